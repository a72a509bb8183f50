"""The live view of a round on tiny real models: the rows' text handed up while they are written (plain and steered),
and a steered round's rankings at each block, with who was dropped."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mo_explorer.config import Settings
from mo_explorer.explorer import Explorer
from mo_explorer.models import generator as generator_module
from mo_explorer.schema import Direction, GenerationParams

HELPFUL = Direction(("helpful",), (1.0,))
PARAMS = GenerationParams(n=4, max_new_tokens=12, temperature=1.0, top_p=1.0, seed=3)
ENV = {"MO_EXPLORER_STEER_BLOCK": "4", "MO_EXPLORER_STEER_SURVIVORS": "1", "MO_EXPLORER_MAX_NEW_TOKENS_LIMIT": "16"}


@pytest.fixture(scope="module")
def explorer(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    from mo_explorer.models.generator import Generator
    from mo_explorer.models.reward import SequenceClassificationRewardModel
    from mo_explorer.storage.store import Store

    tmp = tmp_path_factory.mktemp("live")
    # one thread: the tiny random model's samples (and so whether rows end early) follow the float rounding
    generator = Generator.load(str(tiny_lm_dir), cache_dir=str(tmp), dtype="float32", threads=1)
    scorer = SequenceClassificationRewardModel.load(str(tiny_classifier_dir), cache_dir=str(tmp))
    return Explorer(Settings.from_env(ENV), generator, scorer, Store(f"sqlite:///{tmp / 'db.sqlite'}"))


@pytest.fixture
def every_step(explorer, monkeypatch):
    """Rows handed up at every step (a tiny round lasts less than one throttle period), running to the end."""
    monkeypatch.setattr(generator_module, "PARTIAL_EVERY_S", 0.0)
    rare = explorer.generator.tokenizer("zqxj", add_special_tokens=False)["input_ids"][-1]
    monkeypatch.setattr(explorer.generator, "eos_ids", torch.tensor([rare], dtype=torch.long))


def test_the_generator_hands_up_each_rows_text_as_it_grows(explorer, every_step):
    seen = []
    out = explorer.generator.generate("Hello there", PARAMS, on_partial=seen.append)
    assert len(seen) >= PARAMS.max_new_tokens - 2  # every step from the first words on (the last is a finished row)
    for rows in seen:
        assert sorted(g.row for g in rows) == list(range(PARAMS.n)) and not any(g.finished for g in rows)
    lengths = [[g.n_tokens for g in sorted(rows, key=lambda g: g.row)] for rows in seen]
    assert all(b > a for before, after in zip(lengths, lengths[1:]) for a, b in zip(before, after))
    assert sorted(g.row for g in out) == list(range(PARAMS.n))  # each candidate says which row wrote it
    final = {g.row: g.text for g in out}
    assert all(final[g.row].startswith(g.text.rstrip()) for g in seen[0])


def test_hand_ups_are_throttled(explorer, monkeypatch):
    """At the default pace a round shorter than the throttle period hands up its first words once."""
    monkeypatch.setattr(generator_module, "PARTIAL_EVERY_S", 60.0)
    seen = []
    explorer.generator.generate("Hello there", PARAMS, on_partial=seen.append)
    assert len(seen) == 1 and any(g.text.strip() for g in seen[0])


@pytest.mark.parametrize("steer", [None, HELPFUL])
def test_a_streamed_round_says_what_the_rows_read_before_it_is_done(explorer, every_step, steer):
    events = list(explorer.stream_round("Write a poem", dataclasses.replace(PARAMS, steer=steer)))
    kinds = [e.kind for e in events]
    writing = [e for e in events if e.kind == "writing"]
    assert writing and kinds.index("writing") < kinds.index("done")
    assert all(e.writing and all(g.text is not None and g.row >= 0 for g in e.writing) for e in writing)
    ranked = [e.ranked for e in events if e.kind == "ranked"]
    if steer is None:
        assert ranked == []
        return
    # blocks of 4 tokens in 12: ranked twice, each time every row scored, one survivor, the others dropped
    assert len(ranked) == 2
    for block in ranked:
        assert sorted(block.rows) == list(range(PARAMS.n)) and len(block.candidates) == PARAMS.n
        assert all(len(c.rewards) == len(events[-1].round.objectives) for c in block.candidates)
        survivor = [row for row, p in zip(block.rows, block.parents) if block.rows[p] == row]
        assert len(survivor) == 1
        assert block.dropped() == [(row, survivor[0]) for row in block.rows if row != survivor[0]]
