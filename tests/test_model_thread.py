"""Every model call runs on one thread: torch then keeps one OpenMP team (a second team halves decoding speed)."""

from __future__ import annotations

import threading

import pytest

from mo_explorer import model_thread
from mo_explorer.schema import GenerationParams
from tests.ui_support import tiny_explorer


def test_calls_from_many_threads_all_run_on_the_one_model_thread():
    seen, callers = [], []

    def ask():
        callers.append(threading.get_ident())
        seen.append(model_thread.call(threading.get_ident))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen.append(model_thread.call(threading.get_ident))  # and from the main thread
    assert len(set(seen)) == 1 and seen[0] not in callers + [threading.get_ident()]


def test_a_call_made_on_the_model_thread_runs_inline_and_errors_reach_the_caller():
    assert model_thread.call(lambda: model_thread.call(lambda: threading.get_ident())) == \
        model_thread.call(threading.get_ident)  # nested: no deadlock, same thread
    with pytest.raises(KeyError, match="missing"):
        model_thread.call(lambda: {}["missing"])
    assert model_thread.call(lambda: 7) == 7  # the thread survives an error


def test_a_round_generates_and_scores_on_the_model_thread_scoring_each_candidate_as_it_ends(
        tiny_lm_dir, tiny_classifier_dir, tmp_path, monkeypatch):
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp_path / "db.sqlite", tmp_path / "cache")
    model_ident = model_thread.call(threading.get_ident)
    where, order = set(), []
    generate = explorer.generator.generate
    scoring = type(explorer.reward_model).score.__wrapped__  # the work itself, under runs_on_model_thread

    def recording_score(self, *args, **kwargs):
        where.add(threading.get_ident())  # where the scoring runs (a round's own thread may ask for it)
        order.append("score")
        return scoring(self, *args, **kwargs)

    def recording_generate(messages, params, progress=None, on_finish=None, **live):
        def step(i, total):
            where.add(threading.get_ident())  # where the decoding runs (its steps report from there)
            order.append("step")
            progress(i, total)
        return generate(messages, params, progress=step, on_finish=on_finish, **live)

    monkeypatch.setattr(type(explorer.reward_model), "score", model_thread.runs_on_model_thread(recording_score))
    monkeypatch.setattr(explorer.generator, "generate", recording_generate)
    rnd = explorer.run_round("Tell me a long story", GenerationParams(n=4, max_new_tokens=16, temperature=1.5,
                                                                        top_p=1.0, seed=15))
    assert rnd.status == "complete" and len(rnd.candidates) == 4
    assert where == {model_ident}
    assert 2 <= order.count("score") <= 4  # candidates scored as they end (those ending together, together)
    lengths = sorted(c.n_tokens for c in rnd.candidates)
    assert lengths[0] < lengths[-1], lengths  # this seed has one end early (the check below needs it)
    assert "step" in order[order.index("score"):]  # scored while the others were still decoding
