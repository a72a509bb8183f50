"""Servers the tests start on loopback: a real OpenAI-compatible one, a fault-injecting fake, and PostgreSQL."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float) -> None:
    """Poll url until it answers 200; fail with the server's log if it exits or never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server did not answer {url} in {seconds} s:\n{log.read_text()[-3000:]}")


def poll(probe: Callable[[], object], seconds: float, every: float = 0.1):
    """probe() until it returns something truthy (returned); AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"nothing after {seconds} s")


def start_transformers_serve(model_dir: Path, work: Path, threads: int = 1,
                             extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """`transformers serve <model_dir>` on a free loopback port, offline; returns (process, base URL).

    One torch thread by default: the tests' answers are a few tokens, and the test process needs the other core.
    """
    port = free_port()
    hub = work / "hub"  # /v1/models fails without an existing Hub cache folder, even offline
    hub.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads),
           "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    log = work / "serve.log"
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu", *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc, log, 180)
    except BaseException:
        proc.kill()
        raise
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server this test session started, killing it if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ----- a fake OpenAI-compatible responder, for faults only -----------------------------------------------------

def chunk(index: int, content: str | None = None, finish: str | None = None,
          logprobs: list[float] | None = None) -> bytes:
    """One server-sent event of a streamed chat completion (with token log-probs, as vLLM sends them)."""
    choice = {"index": index, "delta": {"content": content} if content else {}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "t", "logprob": lp, "bytes": None, "top_logprobs": []}
                                          for lp in logprobs]}
    body = {"id": "fake", "object": "chat.completion.chunk", "created": 0, "model": "fake", "choices": [choice]}
    return f"data: {json.dumps(body)}\n\n".encode()


class FakeServer:
    """A loopback HTTP server whose POST handler the test writes (status codes, stalls, cut-off streams)."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler, dict], None]):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                handle(self, body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send_stream(handler: BaseHTTPRequestHandler, events: list[bytes]) -> None:
    """Answer with an SSE stream of events, then close the connection (HTTP/1.0: the close ends the body)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()
    for e in events:
        handler.wfile.write(e)
        handler.wfile.flush()


# ----- PostgreSQL ------------------------------------------------------------------------------------------------

PG_BINARIES = ("initdb", "pg_ctl", "postgres")


def postgres_bin() -> Path | None:
    """The folder holding initdb/pg_ctl/postgres: PATH first, then Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if all((candidate / b).is_file() for b in PG_BINARIES):
            return candidate
    return None


def _as_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its commands as the unprivileged `nobody` when we are root."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "nobody", "--", *cmd]


def start_postgres() -> tuple[str, Callable[[], None]]:
    """initdb into a new temporary folder and start postgres on a free loopback port.

    Returns (SQLAlchemy URL without a database name, stop). The folder is made outside pytest's tmp_path, whose
    parents only root may enter, and handed to `nobody` when we are root.
    """
    bindir = postgres_bin()
    assert bindir is not None
    work = Path(tempfile.mkdtemp(prefix="mo-explorer-pg-"))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(work, nobody.pw_uid, nobody.pw_gid)
    data = work / "pgdata"
    subprocess.run(_as_user([str(bindir / "initdb"), "-D", str(data), "-U", "mo", "--auth=trust", "-E", "UTF8",
                             "--no-sync"]), check=True, capture_output=True)
    port = free_port()
    log = work / "postgres.log"
    # Loopback TCP only; the socket folder is the data folder (the default /var/run/postgresql may not exist).
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(_as_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"]),
                   check=True, capture_output=True)

    def stop_server() -> None:
        subprocess.run(_as_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    return f"postgresql+psycopg://mo@127.0.0.1:{port}", stop_server


def create_database(base: str, name: str) -> str:
    """A fresh database on the server at base; returns its URL."""
    import psycopg

    dsn = base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"
