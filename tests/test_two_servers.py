"""Two `serve` processes on one database (a SQLite file, a PostgreSQL server), as behind a load balancer.

A session started on one continues on the other; restarting one (its start fails rounds whose process is gone)
never fails a round the other is running. Server B runs the tiny models; server A's generator is an 'openai:'
server the test holds mid-answer (a stalled generation server, the one fault injected here), so that its round is
provably running while B restarts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client

from mo_explorer.schema import GenerationParams
from mo_explorer.storage.store import Store
from tests import servers

pytestmark = pytest.mark.model

HOLD = "HOLD"  # prompts containing this are answered only once the test releases them


@pytest.fixture
def held_generation_server():
    """An OpenAI-compatible responder that honours n: 'Hello there' at once; for HOLD prompts, one whole choice and
    one that waits for `release`."""
    release = threading.Event()

    def answer(handler, body):
        if HOLD not in body["messages"][-1]["content"]:
            servers.send_stream(handler, [e for i in range(body["n"]) for e in (
                servers.chunk(i, "Hello there"), servers.chunk(i, finish="stop"))])
            return
        # Two choices: the first whole, the second begun and then held, so the round is stored and running.
        servers.send_stream(handler, [servers.chunk(0, "Hello"), servers.chunk(0, finish="stop"),
                                      servers.chunk(1, "Hel")])
        release.wait(120)
        for e in [servers.chunk(1, "lo"), servers.chunk(1, finish="stop")]:
            handler.wfile.write(e)
        handler.wfile.flush()

    server = servers.FakeServer(answer)
    yield server, release
    release.set()
    server.close()


def start_app(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    """`python -m mo_explorer serve` on a free loopback port; waits until the page answers."""
    port = servers.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mo_explorer", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env={**os.environ, **env, "OMP_NUM_THREADS": "1"}, stdout=log.open("a"),
                            stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
    try:
        servers.wait_for(f"http://127.0.0.1:{port}/", proc, log, 180)
    except BaseException:
        proc.kill()
        raise
    return proc, f"http://127.0.0.1:{port}/"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_servers_share_sessions_and_leave_each_other_s_rounds(request, backend, tmp_path, tiny_lm_dir,
                                                                   tiny_classifier_dir, held_generation_server):
    url = (f"sqlite:///{tmp_path / 'shared.sqlite'}" if backend == "sqlite"
           else servers.create_database(request.getfixturevalue("postgres_base"), f"two_{os.getpid()}_{backend}"))
    fake, release = held_generation_server
    common = {"MO_EXPLORER_DATABASE_URL": url, "MO_EXPLORER_REWARD_MODEL": str(tiny_classifier_dir),
              "MO_EXPLORER_CACHE_DIR": str(tmp_path / "cache"), "MO_EXPLORER_DEVICE": "cpu",
              "MO_EXPLORER_MAX_NEW_TOKENS_LIMIT": "16"}
    env_a = {**common, "MO_EXPLORER_GENERATOR": f"openai:{fake.url}", "MO_EXPLORER_OPENAI_MODEL": "fake"}
    env_b = {**common, "MO_EXPLORER_GENERATOR": str(tiny_lm_dir), "MO_EXPLORER_GENERATOR_DTYPE": "float32"}
    procs = []
    try:
        a, url_a = start_app(env_a, tmp_path / "a.log")
        procs.append(a)
        b, url_b = start_app(env_b, tmp_path / "b.log")
        procs.append(b)
        client_a, client_b = Client(url_a, verbose=False), Client(url_b, verbose=False)

        # A session started on B continues on A: a round there, a rerank of B's round, and B sees it all.
        first = client_b.predict("Name a colour", 2, 1.0, 1.0, 4, 1, "", api_name="/generate")
        sid = first["session_id"]
        second = client_a.predict("Name a fruit", 2, 1.0, 1.0, 4, 1, sid, api_name="/generate")
        assert second["session_id"] == sid and second["status"] == "complete"
        client_a.predict(first["round_id"], [0.0, 1.0], "linear", sid, api_name="/rerank")
        store = Store(url, owner="the-test:0:x")
        rounds = store.list_rounds(sid)
        assert [r.round_id for r in rounds] == [first["round_id"], second["round_id"]]
        assert rounds[0].direction is not None and rounds[0].direction.weights == (0.0, 1.0)
        assert {r.generator_id for r in rounds} == {str(tiny_lm_dir), "openai:fake"}

        # A round running on A while B restarts (killed without warning, then started again).
        job = client_a.submit(f"{HOLD} the answer", 2, 1.0, 1.0, 4, 1, sid, api_name="/generate")
        running = servers.poll(lambda: [r for r in store.list_rounds(sid) if r.status == "running"], 60)
        # ... beside a round whose process is gone (same host, no such pid), which B's start must fail.
        gone = Store(url, owner=f"{socket.gethostname()[:64]}:{2**22 + 12345}:gone")
        orphan = gone.create_round(sid, [{"role": "user", "content": "x"}], GenerationParams(n=1), "g", "r",
                                   ("a",), (False,), (True,), np.ones(1, np.float32), np.eye(1, dtype=np.float32))
        gone.close()
        b.kill()
        b.wait()
        b, url_b = start_app(env_b, tmp_path / "b.log")  # its start fails rounds whose process is gone
        procs.append(b)
        (held,) = running
        assert store.get_round(orphan, sid).status == "failed"  # B's recovery ran ...
        assert store.get_round(held.round_id, sid).status == "running"  # ... and left A's round alone
        release.set()
        result = job.result(timeout=60)
        assert result["status"] == "complete" and [c["text"] for c in result["candidates"]] == ["Hello", "Hello"]
        assert store.get_round(held.round_id, sid).status == "complete"
        store.close()
    finally:
        release.set()
        for p in procs:
            if p.poll() is None:
                servers.stop(p)
