"""The core object on tiny real models: rounds stream and are stored, bad input is refused, nothing is lost."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mo_explorer.config import Settings
from mo_explorer.errors import ModelError, NotFoundError, UserError
from mo_explorer.explorer import Explorer
from mo_explorer.schema import Direction, GenerationParams


@pytest.fixture(scope="module")
def models(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    from mo_explorer.models.generator import Generator
    from mo_explorer.models.reward import SequenceClassificationRewardModel

    cache = str(tmp_path_factory.mktemp("cache"))
    return (Generator.load(str(tiny_lm_dir), cache_dir=cache, dtype="float32"),
            SequenceClassificationRewardModel.load(str(tiny_classifier_dir), cache_dir=cache))


@pytest.fixture
def explorer(models, tmp_path):
    from mo_explorer.storage.store import Store

    settings = Settings.from_env({"MO_EXPLORER_MAX_PROMPT_CHARS": "200", "MO_EXPLORER_MAX_NEW_TOKENS_LIMIT": "16"})
    return Explorer(settings, models[0], models[1], Store(f"sqlite:///{tmp_path / 'db.sqlite'}"))


PARAMS = GenerationParams(n=6, max_new_tokens=6, temperature=1.0, top_p=1.0, seed=3)


def test_round_is_generated_scored_and_stored(explorer):
    rnd = explorer.run_round("Write a poem about the sea", PARAMS)
    assert len(rnd.candidates) == 6 and rnd.status == "complete"
    assert rnd.objectives == ("helpful", "safe", "concise", "length_tokens", "gen_seconds")
    assert rnd.measured == (False, False, False, True, True)
    assert rnd.maximize[-1] is False  # generation time is a cost
    assert rnd.maximize[rnd.objectives.index("length_tokens")] is False  # and so is length
    R = rnd.reward_matrix()
    # ArmoRM identity on the stored round: score == sum(gating * (rewards @ T)) over the model objectives.
    np.testing.assert_allclose(rnd.scores(), (R[:, :3] @ rnd.transform) @ rnd.gating, rtol=1e-5, atol=1e-6)
    assert [c.n_tokens for c in rnd.candidates] == R[:, 3].astype(int).tolist()
    stored = explorer.get_round(rnd.round_id, rnd.session_id)
    np.testing.assert_array_equal(stored.reward_matrix(), R)
    assert [r.round_id for r in explorer.session_rounds(rnd.session_id)] == [rnd.round_id]


def test_stream_reports_progress_then_chunks(explorer):
    events = list(explorer.stream_round("Hello there", PARAMS))
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "done" and "progress" in kinds
    scored = [len(e.round.candidates) for e in events if e.kind == "scored"]
    assert scored == sorted(set(scored)) and scored[-1] == 6  # stored as candidates finish, none twice


@pytest.fixture
def staggered(models):
    """The tiny generator with a strong end-of-turn row: sampled rows stop after a few steps, at different steps."""
    import torch

    generator = models[0]
    eos = generator.tokenizer.eos_token_id
    saved = generator.model.lm_head.weight[eos].clone()
    with torch.no_grad():
        generator.model.lm_head.weight[eos] = 3.0 * saved / saved.norm()
    generator._step = None  # the decoding step lays the weights out once (models.onednn): rebuild it on these
    yield GenerationParams(n=6, max_new_tokens=16, seed=1)
    with torch.no_grad():
        generator.model.lm_head.weight[eos] = saved
    generator._step = None


def test_candidates_are_scored_while_others_are_still_written(explorer, staggered, monkeypatch):
    """I generate 6 candidates; the first to end is stored before the last one is written."""
    import time

    real = explorer.generator.generate
    session = explorer.new_session()
    stored_while_writing = []

    def watching(messages, params, progress=None, on_finish=None, **live):
        seen = []

        def finished(generation):
            seen.append(generation)
            if len(seen) == params.n:  # the last candidate just ended: are the earlier ones stored already?
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not stored_while_writing:
                    rounds = explorer.session_rounds(session)
                    if rounds and rounds[0].candidates:
                        stored_while_writing.append(len(rounds[0].candidates))
                    time.sleep(0.01)
            on_finish(generation)
        return real(messages, params, progress=progress, on_finish=finished, **live)

    monkeypatch.setattr(explorer.generator, "generate", watching)
    final = explorer.run_round("Hello there", staggered, session_id=session)
    assert stored_while_writing and stored_while_writing[0] < 6
    assert len(final.candidates) == 6 and [c.index for c in final.candidates] == list(range(6))
    tokens = [c.n_tokens for c in final.candidates]
    assert tokens == sorted(tokens)  # numbered in the order they finished


def test_same_seed_same_candidates(explorer):
    a = explorer.run_round("Hello", PARAMS)
    b = explorer.run_round("Hello", PARAMS, session_id=a.session_id)
    assert [c.text for c in a.candidates] == [c.text for c in b.candidates]
    assert len(explorer.session_rounds(a.session_id)) == 2


@pytest.mark.parametrize("prompt,params,message", [
    ("   ", PARAMS, "empty"),
    ("x" * 201, PARAMS, "201 characters"),
    ("hi", GenerationParams(n=33), "n: .* 32"),
    ("hi", GenerationParams(n=2, max_new_tokens=17), "Max new tokens"),
    ("hi", GenerationParams(n=2, max_new_tokens=4, top_p=0.0), "top_p: "),
    ("hi", GenerationParams(n=2.5), "n: must be a whole number"),
    ("hi", GenerationParams(n=True), "n: must be a whole number, not true/false"),
    ("hi", GenerationParams(temperature=math.inf), "temperature: must be a finite number"),
    ("hi", GenerationParams(temperature=math.nan), "temperature: must be a finite number"),
    ("hi", GenerationParams(seed=10**30), "seed: "),
    ("\ud800", PARAMS, "prompt.*lone surrogate"),
    (None, PARAMS, "prompt"),
    ([{"role": "user"}], PARAMS, "content"),
])
def test_bad_requests_are_refused_before_anything_runs(explorer, prompt, params, message):
    with pytest.raises(UserError, match=message):
        explorer.run_round(prompt, params)
    assert explorer.list_sessions() == []


def test_prompt_token_limit(models, tmp_path):
    from mo_explorer.storage.store import Store

    settings = Settings.from_env({"MO_EXPLORER_MAX_PROMPT_TOKENS": "10"})
    explorer = Explorer(settings, models[0], models[1], Store("sqlite://"))
    with pytest.raises(UserError, match="tokens long"):
        explorer.run_round("Write a short poem about the sea and the wind, please, today", PARAMS)


def test_unknown_session_is_refused(explorer):
    with pytest.raises(NotFoundError, match="unknown session"):
        explorer.run_round("hi", PARAMS, session_id="not-a-session")


class FailingSecondChunk:
    """Wraps a reward model and fails on its second call, as a model crashing mid-round would."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.model_id, self.objectives = inner.model_id, inner.objectives

    def score(self, prompt, responses):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("out of memory")
        self.first = len(responses)
        return self.inner.score(prompt, responses)


def test_model_failure_mid_round_keeps_what_was_stored(explorer, staggered):
    explorer.reward_model = failing = FailingSecondChunk(explorer.reward_model)
    session = explorer.new_session()
    with pytest.raises(ModelError, match="out of memory"):
        explorer.run_round("Hello", staggered, session_id=session)
    (rnd,) = explorer.session_rounds(session)
    assert rnd.status == "failed" and "out of memory" in rnd.error
    assert 1 <= len(rnd.candidates) == failing.first < 6


def test_generator_failing_mid_round_keeps_the_finished_candidates(explorer, staggered, monkeypatch):
    """The generator crashes after two candidates ended: those two are stored, the round says why it failed."""
    real = explorer.generator.generate

    def crash_after_two(messages, params, progress=None, on_finish=None, **live):
        seen = []

        def finished(generation):
            on_finish(generation)
            seen.append(generation)
            if len(seen) == 2:
                raise RuntimeError("CUDA error: device lost")
        return real(messages, params, progress=progress, on_finish=finished, **live)

    monkeypatch.setattr(explorer.generator, "generate", crash_after_two)
    session = explorer.new_session()
    with pytest.raises(ModelError, match="generator failed.*device lost"):
        explorer.run_round("Hello", staggered, session_id=session)
    (rnd,) = explorer.session_rounds(session)
    assert rnd.status == "failed" and "device lost" in rnd.error
    assert len(rnd.candidates) == 2


def test_generator_failure_is_a_clear_error(explorer, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("CUDA error: device lost")

    monkeypatch.setattr(explorer.generator, "generate", boom)
    with pytest.raises(ModelError, match="generator failed.*device lost"):
        explorer.run_round("Hello", PARAMS)


def test_rerank_follows_the_direction_and_is_stored(explorer):
    rnd = explorer.run_round("Tell me a joke", PARAMS)
    up = Direction(("helpful",), (1.0,))
    down = Direction(("helpful",), (-1.0,))
    best_up = explorer.rerank(rnd.round_id, up, rnd.session_id).order[0]
    best_down = explorer.rerank(rnd.round_id, down, rnd.session_id).order[0]
    helpful = rnd.reward_matrix()[:, 0]
    assert helpful[best_up] == helpful.max() and helpful[best_down] == helpful.min()
    assert explorer.get_round(rnd.round_id, rnd.session_id).direction == down
    with pytest.raises(UserError, match="nope"):
        explorer.rerank(rnd.round_id, Direction(("nope",), (1.0,)), rnd.session_id)


def test_votes_learned_direction_and_exports(explorer):
    rnd = explorer.run_round("Tell me a joke", PARAMS)
    sid = rnd.session_id
    assert explorer.learned_direction(sid) is None
    helpful = rnd.reward_matrix()[:, 0]
    pairs = [(0, 1), (2, 3), (4, 5), (1, 2), (3, 4)]
    for a, b in pairs:  # the user always prefers the more "helpful" one
        explorer.vote(sid, rnd.round_id, a, b, "a" if helpful[a] > helpful[b] else "b")
    explorer.vote(sid, rnd.round_id, 0, 5, "tie")
    learned = explorer.learned_direction(sid, l2=0.01)
    assert learned.n_votes == 5 and learned.agreement == 1.0
    assert learned.direction.weights[0] == max(learned.direction.weights)
    trl = [json.loads(line) for line in explorer.export_session(sid, "trl").splitlines()]
    assert len(trl) == 5 and all(set(row) == {"prompt", "chosen", "rejected"} for row in trl)
    best = max(pairs[0], key=lambda i: helpful[i])
    assert trl[0]["chosen"][0]["content"] == rnd.candidates[best].text
    csv_text = explorer.export_session(sid, "csv")
    assert csv_text.count("\n") >= 7 and "length_tokens" in csv_text.splitlines()[0]
    restored = explorer.import_session(explorer.export_session(sid, "json"))
    assert restored != sid
    (copy,) = explorer.session_rounds(restored)
    assert [c.text for c in copy.candidates] == [c.text for c in rnd.candidates]
    with pytest.raises(UserError):
        explorer.import_session("{not json")
    other = explorer.new_session()
    with pytest.raises(NotFoundError):
        explorer.vote(other, rnd.round_id, 0, 1, "a")


def test_an_imported_session_whose_ids_start_at_5_votes_and_learns_by_id(explorer):
    """Candidate ids are not row numbers: a session imported with ids 5..10 learns the same direction from the
    same votes as the original (ids 0..5), and the reward model's agreement is counted on the right rows."""
    rnd = explorer.run_round("Write a poem about the sea", PARAMS)
    sid = rnd.session_id
    helpful = rnd.reward_matrix()[:, 0]
    pairs = [(0, 1), (2, 3), (4, 5), (1, 2), (3, 4)]
    for a, b in pairs:
        explorer.vote(sid, rnd.round_id, a, b, "a" if helpful[a] > helpful[b] else "b")
    data = json.loads(explorer.export_session(sid, "json"))
    for r in data["rounds"]:
        for c in r["candidates"]:
            c["index"] += 5
    for v in data.get("votes", []):
        v["a_index"] += 5
        v["b_index"] += 5
    shifted = explorer.import_session(json.dumps(data))
    (copy,) = explorer.session_rounds(shifted)
    assert [c.index for c in copy.candidates] == list(range(5, 11))
    assert copy.positions()[5] == 0 and copy.positions()[10] == 5
    explorer.vote(shifted, copy.round_id, 10, 5, "a" if helpful[5] > helpful[0] else "b")  # ids, not rows
    explorer.vote(sid, rnd.round_id, 5, 0, "a" if helpful[5] > helpful[0] else "b")
    want, got = explorer.learned_direction(sid, l2=0.01), explorer.learned_direction(shifted, l2=0.01)
    assert got.n_votes == want.n_votes == 6
    np.testing.assert_allclose(got.direction.weights, want.direction.weights, rtol=1e-6)
    assert got.gate_agreement == want.gate_agreement
