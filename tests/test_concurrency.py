"""Cheap events (rerank, vote, export) are answered while a generation runs; waiting generations share the models."""

from __future__ import annotations

import threading
import time

import pytest
from gradio_client import Client

from mo_explorer.schema import GenerationParams
from tests.ui_support import served, tiny_explorer, tiny_settings

SLOW_STEP_S = 0.3
CHEAP_S = 0.5
CLIENTS = 6


def test_cheap_events_do_not_wait_behind_a_generation(tiny_lm_dir, tiny_classifier_dir, tmp_path, monkeypatch,
                                                      store_url):
    settings = tiny_settings()
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, store_url, tmp_path / "cache", settings)
    rnd = explorer.run_round("Name a colour", GenerationParams(n=3, max_new_tokens=3, seed=1))
    generate = explorer.generator.generate
    generating, hold, at_once, most = threading.Event(), threading.Event(), [0], [0]

    def slow(messages, params, progress=None, on_finish=None, **live):
        at_once[0] += 1
        most[0] = max(most[0], at_once[0])
        generating.set()
        try:
            def slowly(step, total):
                hold.wait(timeout=120)  # the models stay busy until the cheap events have been answered
                time.sleep(SLOW_STEP_S)
                if progress is not None:
                    progress(step, total)
            return generate(messages, params, progress=slowly, on_finish=on_finish, **live)
        finally:
            at_once[0] -= 1

    monkeypatch.setattr(explorer.generator, "generate", slow)
    rerank = explorer.rerank

    def slow_rerank(*args, **kwargs):
        time.sleep(CHEAP_S)  # stands in for a busy server: each call holds its worker this long
        return rerank(*args, **kwargs)

    monkeypatch.setattr(explorer, "rerank", slow_rerank)
    with served(explorer, settings) as url:
        client = Client(url, verbose=False)
        jobs = [client.submit(prompt="Write a long story", n=2, temperature=1.0, top_p=1.0, max_new_tokens=12,
                              seed=i, session_id=rnd.session_id, api_name="/generate") for i in range(2)]
        assert generating.wait(timeout=60)
        started = time.monotonic()
        reranks = [client.submit(round_id=rnd.round_id, weights=[1.0, -1.0 + i], session_id=rnd.session_id,
                                 api_name="/rerank") for i in range(CLIENTS)]
        for job in reranks:
            job.result(timeout=60)
        reranks_s = time.monotonic() - started
        assert not jobs[1].done(), "measured while the generations were still queued or running"
        client.predict(rnd.session_id, rnd.round_id, 0, 1, "a", api_name="/vote")
        client.predict(rnd.session_id, "json", api_name="/export")
        assert not jobs[1].done()
        deadline = time.monotonic() + 60
        while most[0] < 2 and time.monotonic() < deadline:  # the second round reaches the models' queue too
            time.sleep(0.05)
        hold.set()
        results = [job.result(timeout=120) for job in jobs]
    # One at a time the reranks would take CLIENTS * CHEAP_S; side by side, about one CHEAP_S.
    assert reranks_s < CLIENTS * CHEAP_S / 2, reranks_s
    # Both rounds waited for the models side by side: the second joined the model thread's queue (decoded with
    # any other waiting round, models.batching), not a lock in front of it.
    assert most[0] == 2
    assert all(r["status"] == "complete" for r in results)


@pytest.mark.parametrize("event", ["generate_stream", "generate_on_enter", "generate"])
def test_model_events_share_one_group_as_wide_as_the_admission_queue(tiny_lm_dir, tiny_classifier_dir, tmp_path,
                                                                     event):
    from mo_explorer.ui.app import MODEL_QUEUE, build_demo

    # Their handlers all start, so each round waits in the Admission queue (which says how many are ahead), and
    # one more than the cap is let in, to be refused with a message; the model thread still runs one at a time.
    settings = tiny_settings(MO_EXPLORER_MAX_WAITING_ROUNDS="5")
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp_path / "db.sqlite", tmp_path / "cache", settings)
    demo = build_demo(explorer, settings)
    (fn,) = [f for f in demo.fns.values() if f.api_name == event]
    assert (fn.concurrency_id, fn.concurrency_limit) == (MODEL_QUEUE["concurrency_id"], 6)
    cheap = [f for f in demo.fns.values() if f.api_name in ("rerank", "vote", "export", "select_candidate")]
    assert len(cheap) == 4 and all(f.concurrency_id != "models" for f in cheap)
