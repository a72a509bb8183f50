"""Clients that leave and servers that restart: no round stays "running", nothing scored is lost, and a server
starting on a shared database leaves the running rounds of the others alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from gradio_client import Client

from mo_explorer.storage.store import Store
from tests.ui_support import served, tiny_page


@pytest.fixture(scope="module")
def page(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    return tiny_page(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory.mktemp("leave"))


def running(explorer) -> list:
    return [r for s in explorer.list_sessions(limit=1000) for r in explorer.session_rounds(s.session_id)
            if r.status == "running"]


def test_stream_closed_after_a_chunk_keeps_it_and_cancels_the_round(page):
    sid = page.explorer.new_session()
    stream = page.h.generate("Tell me a story", 6, 1.0, 1.0, 4, 3, sid, None, None)
    for update in stream:
        if page.c.round_id in update:  # the first candidates are stored and shown
            break
    started = time.monotonic()
    stream.close()  # what Gradio does when the client disconnects or cancels
    assert time.monotonic() - started < 5
    (rnd,) = page.explorer.session_rounds(sid)
    assert rnd.status == "cancelled" and 1 <= len(rnd.candidates) <= 6 and "client left" in rnd.error
    assert running(page.explorer) == []


def test_stream_closed_while_generating_stores_nothing_and_frees_the_models(page, monkeypatch):
    generate = page.explorer.generator.generate
    steps = []

    def slow(messages, params, progress=None, on_finish=None, **live):
        def slowly(step, total):
            time.sleep(0.2)
            steps.append(step)
            progress(step, total)
        return generate(messages, params, progress=slowly, on_finish=on_finish, **live)

    monkeypatch.setattr(page.explorer.generator, "generate", slow)
    sid = page.explorer.new_session()
    stream = page.h.generate("Tell me a story", 2, 1.0, 1.0, 16, 3, sid, None, None)
    while "token 0 /" in next(stream)[page.c.status]:
        pass  # until the tokens are coming
    stream.close()
    assert page.explorer._generate_lock.acquire(timeout=5)  # generation stopped at its next token
    page.explorer._generate_lock.release()
    assert 1 <= max(steps) < 16  # stopped part-way, not run to the end
    assert page.explorer.session_rounds(sid) == [] and running(page.explorer) == []


def test_client_cancelling_over_http_leaves_no_running_round(page, monkeypatch):
    generate = page.explorer.generator.generate

    def one_by_one(messages, params, progress=None, on_finish=None, **live):
        def finished(generation):
            on_finish(generation)
            progress(params.max_new_tokens, params.max_new_tokens)  # a decoding step passes before the next ends
            time.sleep(1.0)  # candidates arrive a second apart: time for the client to leave in between
        return generate(messages, params, progress=progress, on_finish=finished, **live)

    monkeypatch.setattr(page.explorer.generator, "generate", one_by_one)
    sid = page.explorer.new_session()
    with served(page.explorer, page.settings) as url:
        client = Client(url, verbose=False)
        job = client.submit("Tell me a story", 8, 1.0, 1.0, 4, 3, sid, None, None, api_name="/generate_stream")
        deadline = time.monotonic() + 60
        while not page.explorer.session_rounds(sid) and time.monotonic() < deadline:
            time.sleep(0.05)
        job.cancel()
        deadline = time.monotonic() + 10  # "within seconds"
        while page.explorer.session_rounds(sid)[0].status == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
    (rnd,) = page.explorer.session_rounds(sid)
    assert rnd.status == "cancelled" and 1 <= len(rnd.candidates) < 8  # the scored ones are kept
    assert running(page.explorer) == []


SERVER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from mo_explorer.config import Settings
    from mo_explorer.explorer import Explorer
    from mo_explorer.schema import GenerationParams
    from mo_explorer.storage.store import Store

    explorer = Explorer(Settings(), None, None, Store(sys.argv[1]))
    explorer.recover_interrupted()  # what `serve` does at start
    sid = explorer.new_session()
    rid = explorer.store.create_round(sid, [{"role": "user", "content": "hi"}], GenerationParams(), "g", "r",
                                      ("a",), (False,), (True,), np.ones(1), np.eye(1))
    print(sid, rid, flush=True)
    if sys.argv[2] == "crash":
        raise SystemExit(0)  # gone without finishing its round, like kill -9
    sys.stdin.readline()  # "finish": the round completes, then the server stops
    explorer.store.finish_round(rid, sid)
    print("finished", flush=True)
""")


def start(url: str, mode: str) -> tuple[subprocess.Popen, str, str]:
    server = subprocess.Popen([sys.executable, "-c", SERVER, url, mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    sid, rid = server.stdout.readline().split()
    return server, sid, rid


def test_two_servers_on_one_database_keep_their_running_rounds(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    first, first_sid, first_rid = start(url, "serve")  # server 1 runs a round
    crashed, old_sid, old_rid = start(url, "crash")  # server 2 dies in the middle of one
    crashed.wait(timeout=60)
    second, second_sid, second_rid = start(url, "serve")  # server 2 restarts on the same database
    try:
        store = Store(url)
        assert store.get_round(first_rid, first_sid).status == "running"  # server 1's round survived
        assert store.get_round(old_rid, old_sid).status == "failed"  # the dead process's round did not
        third, third_sid, third_rid = start(url, "crash")  # server 1 restarting would not touch server 2's
        third.wait(timeout=60)
        assert store.get_round(second_rid, second_sid).status == "running"
        assert store.get_round(first_rid, first_sid).status == "running"
        for server in (first, second):
            server.stdin.write("finish\n")
            server.stdin.flush()
            assert server.stdout.readline().strip() == "finished"
        assert store.get_round(first_rid, first_sid).status == "complete"
        assert store.get_round(second_rid, second_sid).status == "complete"
        store.close()
    finally:
        for server in (first, second):
            server.kill()
            server.wait(timeout=60)
