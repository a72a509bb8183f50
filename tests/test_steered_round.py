"""A steered round on tiny real models: rows are ranked along the direction every block, the best go on, the
round records how it was written, and a generator that cannot branch says so and writes a plain round."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mo_explorer import steering
from mo_explorer.config import Settings
from mo_explorer.errors import UserError
from mo_explorer.explorer import Explorer
from mo_explorer.schema import Direction, Generation, GenerationParams

HELPFUL = Direction(("helpful",), (1.0,))
PARAMS = GenerationParams(n=6, max_new_tokens=12, temperature=1.0, top_p=1.0, seed=3, steer=HELPFUL)
ENV = {"MO_EXPLORER_STEER_BLOCK": "4", "MO_EXPLORER_STEER_SURVIVORS": "1", "MO_EXPLORER_MAX_NEW_TOKENS_LIMIT": "16"}


@pytest.fixture(scope="module")
def models(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    from mo_explorer.models.generator import Generator
    from mo_explorer.models.reward import SequenceClassificationRewardModel

    cache = str(tmp_path_factory.mktemp("cache"))
    # One thread whatever the machine's load: the thread count changes float rounding, and with it which tokens a
    # tiny random model samples (on an idle machine two threads ended every row before the first block).
    return (Generator.load(str(tiny_lm_dir), cache_dir=cache, dtype="float32", threads=1),
            SequenceClassificationRewardModel.load(str(tiny_classifier_dir), cache_dir=cache))


def explorer_on(models, tmp_path, generator=None, env=ENV) -> Explorer:
    from mo_explorer.storage.store import Store

    return Explorer(Settings.from_env(env), generator or models[0], models[1],
                    Store(f"sqlite:///{tmp_path / 'db.sqlite'}"))


def test_survivors_keep_their_rows_and_the_dropped_copy_the_best_in_turn():
    rng = np.random.default_rng(0)
    assert steering.parents(np.array([0.1, 0.9, 0.5, 0.7]), 2, 0.0, rng) == [1, 1, 3, 3]
    assert steering.parents(np.array([0.3, 0.3, 0.1]), 1, 0.0, rng) == [0, 0, 0]  # a tie goes to the lower row
    drawn = steering.parents(np.array([0.0, 1.0, 0.9, 0.2, 0.1, 0.0]), 2, 0.05, rng)
    assert drawn[1] == 1 and drawn[2] == 2 and set(drawn) <= {1, 2}  # drawn among the survivors only


def rows_run_to_the_end(generator, monkeypatch) -> None:
    """End a turn only on a token the tiny random model hardly writes: with its own EOS (which it favours in some
    test orders) every row could end before the first block, and nothing would be steered."""
    import torch

    rare = generator.tokenizer("zqxj", add_special_tokens=False)["input_ids"][-1]
    monkeypatch.setattr(generator, "eos_ids", torch.tensor([rare], dtype=torch.long))


def test_the_best_partial_answer_of_each_block_is_what_every_row_goes_on_from(models, monkeypatch):
    """Survivors 1: after each ranking, every unfinished row continues the one the direction ranks first."""
    generator = models[0]
    rows_run_to_the_end(generator, monkeypatch)
    seen: list[list[Generation]] = []
    picked: list[tuple[int, ...]] = []

    def rewards(partial):
        seen.append(partial)
        return np.array([[float(g.token_ids[-1] % 7)] for g in partial]), ("helpful",), (True,)

    guide = steering.Guide(rewards, HELPFUL, block_tokens=4, survivors=1)
    original = guide.__call__

    def recording(partial):
        sources = original(partial)
        picked.append(partial[sources[0]].token_ids)
        return sources

    out = generator.generate("Hello there", PARAMS, guide=recording_guide(guide, recording))
    assert seen, "the guide was never asked"
    assert all(len(g.token_ids) == 4 * (i + 1) for i, block in enumerate(seen) for g in block)
    first = picked[0]
    best = max(seen[0], key=lambda g: g.token_ids[-1] % 7)
    assert first == best.token_ids  # the row ranked first along the direction...
    long = [g for g in out if g.n_tokens > 4]
    assert long and all(g.token_ids[:4] == first for g in long)  # ...is the prefix of every row that went on
    assert len(out) == PARAMS.n and all(g.n_tokens <= PARAMS.max_new_tokens for g in out)


def recording_guide(guide, call):
    """The guide with its call replaced (the generator reads block_tokens from it)."""

    class Recording:
        block_tokens = guide.block_tokens

        def __call__(self, partial):
            return call(partial)

    return Recording()


def test_a_steered_round_records_its_mode_and_direction_and_exports_carry_them(models, tmp_path):
    explorer = explorer_on(models, tmp_path)
    rnd = explorer.run_round("Write a poem about the sea", PARAMS)
    assert rnd.status == "complete" and len(rnd.candidates) == 6
    assert rnd.params.mode == "steered" and rnd.params.steer == HELPFUL
    assert rnd.direction == HELPFUL  # ranked along the direction it was written by
    exported = json.loads(explorer.export_session(rnd.session_id, "json"))
    assert exported["rounds"][0]["params"]["steer"] == HELPFUL.to_dict()
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(explorer.export_session(rnd.session_id, "csv"))))
    assert {r["mode"] for r in rows} == {"steered"} and json.loads(rows[0]["steer"]) == HELPFUL.to_dict()
    copy = explorer.import_session(explorer.export_session(rnd.session_id, "json"))
    assert explorer.session_rounds(copy)[0].params.steer == HELPFUL
    plain = explorer.run_round("Write a poem about the sea", dataclasses.replace(PARAMS, steer=None))
    assert plain.params.mode == "plain" and "steer" not in plain.params.to_dict()


def test_steering_changes_what_is_written_and_spends_the_same_token_budget(models, tmp_path, monkeypatch):
    rows_run_to_the_end(models[0], monkeypatch)
    explorer = explorer_on(models, tmp_path)
    steered = explorer.run_round("Hello", PARAMS)
    plain = explorer.run_round("Hello", dataclasses.replace(PARAMS, steer=None))
    assert [c.text for c in steered.candidates] != [c.text for c in plain.candidates]
    assert sum(c.n_tokens for c in steered.candidates) <= PARAMS.n * PARAMS.max_new_tokens


def test_a_generator_that_cannot_branch_writes_a_plain_round_and_says_so(models, tmp_path, tiny_lm_dir):
    from mo_explorer.models.generator import Generator

    reference = Generator.load(str(tiny_lm_dir), cache_dir=str(tmp_path), dtype="float32", sampler="transformers")
    explorer = explorer_on(models, tmp_path, generator=reference)
    done = [e for e in explorer.stream_round("Hello", PARAMS) if e.kind == "done"][0]
    assert done.round.params.mode == "plain" and "plain round" in done.note


def test_a_direction_over_objectives_the_round_lacks_is_refused_before_generating(models, tmp_path):
    explorer = explorer_on(models, tmp_path)
    with pytest.raises(UserError, match="unknown objective"):
        explorer.run_round("Hello", dataclasses.replace(PARAMS, steer=Direction(("kindness",), (1.0,))))
    assert explorer.list_sessions() == []
