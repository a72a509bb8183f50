"""Many visitors at once on the served page: how long each waits for its first point and its whole round.

Run: python bench/load.py [--visitors 16] [--n 8] [--max-new-tokens 128] [--server-env KEY=VALUE ...]
Starts `python -m mo_explorer serve` on a free loopback port with a fresh data dir (or drives --url, loopback
only), then every visitor at once: opens the page, generates through the page's streamed event (as the browser
does), drags (one /rerank) and votes (one /vote). Prints one JSON line: p50/p95 seconds to the first point and to
the complete round, the round sizes served, refusals by kind (each with its message), errors, and rows lost (what a
visitor was shown or told was stored, missing from the database). Bounded: at most --visitors (<= 64) visitors,
one round each, and --timeout seconds in all; it stops by itself. A script, not a test: the numbers depend on the
machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

REPO = Path(__file__).resolve().parent.parent
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_VISITORS = 64
REFUSALS = {"Too many rounds": "rounds_per_minute", "Too many votes": "votes_per_minute",
            "The demo is busy": "queue_full", "candidate tokens is more than": "round_size",
            "storage is full": "storage"}


def cpu_model() -> str:
    """The CPU's model name and the vector flags that decide the fast path."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in text]
    return f"{name} ({', '.join(flags)})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, env_pairs: list[str], deadline: float) -> tuple[subprocess.Popen, str]:
    """The app on the embedded models, on loopback, its database in data_dir; waits (bounded) for the page."""
    port = free_port()
    env = {**os.environ, "MO_EXPLORER_SPACES_DATA_DIR": str(data_dir), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("MO_EXPLORER_DATABASE_URL", None)
    env.pop("MO_EXPLORER_DATABASE_PATH", None)
    env.update(pair.split("=", 1) for pair in env_pairs)
    log = open(data_dir / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mo_explorer", "serve", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); see {data_dir / 'server.log'}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not answer in time")


def call(client: httpx.Client, url: str, api: str, data: list, deadline: float, on_data=None) -> list:
    """One event through Gradio's REST API (POST, then its SSE stream); on_data(payload) for each partial output.

    Returns the complete output; raises RuntimeError with the page's message for an error event.
    """
    event_id = client.post(f"{url}gradio_api/call/{api}", json={"data": data}).raise_for_status().json()["event_id"]
    kind = None
    with client.stream("GET", f"{url}gradio_api/call/{api}/{event_id}",
                       timeout=max(1.0, deadline - time.monotonic())) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = json.loads(line.split(":", 1)[1]) if line[5:].strip() else None
                if kind == "error":
                    raise RuntimeError(str(payload))
                if kind == "generating" and on_data is not None:
                    on_data(payload)
                if kind == "complete":
                    if on_data is not None:
                        on_data(payload)
                    return payload
    raise RuntimeError(f"{api}: the stream ended without a result")


def refusal_kind(message: str) -> str | None:
    return next((kind for words, kind in REFUSALS.items() if words in message), None)


def visitor(i: int, url: str, start: threading.Barrier, deadline: float, args, out: dict) -> None:
    """One visitor: open the page, generate (streamed), drag once, vote once; everything it saw goes to out."""
    headers = {"X-Forwarded-For": f"192.0.2.{i + 1}"}  # its own address, as the proxy of a Space would say
    seen: dict = {"first_point_s": None, "widget": None, "status": ""}
    with httpx.Client(headers=headers, timeout=60) as client:
        start.wait()
        t0 = time.monotonic()
        try:
            client.get(url).raise_for_status()
            out["page_s"] = time.monotonic() - t0

            def on_data(payload):
                widget, status = payload[0], payload[6]
                if isinstance(widget, dict) and widget.get("indices"):
                    if seen["first_point_s"] is None:
                        seen["first_point_s"] = time.monotonic() - t0
                    seen["widget"] = widget
                if isinstance(status, str) and status:
                    seen["status"] = status

            g0 = time.monotonic()
            call(client, url, "generate_stream", [PROMPT, args.n, 0.8, 0.95, args.max_new_tokens, i, "", None,
                                                  None], deadline, on_data)
            out.update(first_point_s=seen["first_point_s"], complete_s=time.monotonic() - t0,
                       round_s=time.monotonic() - g0, status=seen["status"])
            widget = seen["widget"]
            out.update(session_id=widget["session_id"], round_id=widget["round_id"], shown=len(widget["indices"]))
            a, b = widget["indices"][:2]
            call(client, url, "rerank", [widget["round_id"], [1.0, 0.5], "linear", widget["session_id"], None,
                                         None], deadline)
            call(client, url, "vote", [widget["session_id"], widget["round_id"], a, b, "a"], deadline)
            out["voted"] = True
        except Exception as exc:  # a refusal (a message from the page) or an error; both are reported
            message = str(exc)
            kind = refusal_kind(message)
            out["refused" if kind else "error"] = kind or f"{type(exc).__name__}: {message[:300]}"
            out["message"] = message[:300]


def rows_lost(db: Path, results: list[dict]) -> dict:
    """Candidates shown to a visitor and votes acknowledged, missing from the database (read after the run)."""
    sys.path.insert(0, str(REPO))
    from mo_explorer.storage.store import Store

    store = Store(f"sqlite:///{db}")
    lost_candidates = lost_votes = 0
    for r in results:
        if "round_id" not in r:
            continue
        rnd = store.get_round(r["round_id"], r["session_id"])
        lost_candidates += max(0, r["shown"] - len(rnd.candidates))
        if r.get("voted"):
            lost_votes += 1 - min(1, len(store.list_votes(r["session_id"])))
    store.close()
    return {"candidates": lost_candidates, "votes": lost_votes}


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of values, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, int(-(-q * len(ordered) // 100)) - 1))], 2)


def summarise(results: list[dict], lost: dict, wall: float) -> dict:
    first = [r["first_point_s"] for r in results if r.get("first_point_s") is not None]
    complete = [r["complete_s"] for r in results if "complete_s" in r]
    sizes = collections.Counter(r["status"].split("busy: ")[1].split(" this")[0] if "busy: " in r.get("status", "")
                                else "as asked" for r in results if "complete_s" in r)
    return {
        "visitors": len(results), "served": len(complete), "wall_s": round(wall, 1),
        "first_point_s": {"p50": percentile(first, 50), "p95": percentile(first, 95), "max": percentile(first, 100)},
        "complete_s": {"p50": percentile(complete, 50), "p95": percentile(complete, 95),
                       "max": percentile(complete, 100)},
        "round_sizes": dict(sizes), "refusals": dict(collections.Counter(r["refused"] for r in results
                                                                          if "refused" in r)),
        "refusal_messages": sorted({r["message"] for r in results if "refused" in r})[:5],
        "errors": [r["error"] for r in results if "error" in r], "rows_lost": lost,
        "page_s": {"p50": percentile([r["page_s"] for r in results if "page_s" in r], 50)},
    }


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system, every thread) used so far by a process: this script's own when pid is None."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--visitors", type=int, default=16)
    p.add_argument("--n", type=int, default=8, help="Candidates each visitor asks for.")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--timeout", type=float, default=600.0, help="Seconds for the whole run, server start included.")
    p.add_argument("--url", help="Drive a server already running on loopback (its database is not checked).")
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                   help="Environment of the started server, e.g. MO_EXPLORER_QUEUE_DRAIN_SECONDS=0.")
    args = p.parse_args()
    if not 1 <= args.visitors <= MAX_VISITORS:
        raise SystemExit(f"--visitors must be 1..{MAX_VISITORS}")
    deadline = time.monotonic() + args.timeout
    load_before = os.getloadavg()
    data_dir, proc, url = Path(tempfile.mkdtemp(prefix="mo-load-")), None, args.url
    if url is None:
        proc, url = start_server(data_dir, args.server_env, deadline)
    if urlparse(url).hostname not in LOOPBACK:
        raise SystemExit("loopback only: this script sends traffic to 127.0.0.1, localhost or ::1, nowhere else")
    try:
        call(httpx.Client(timeout=600), url, "generate", ["Say hi", 1, 0.8, 0.95, 8, 0, "", None], deadline)
        results = [{} for _ in range(args.visitors)]
        start = threading.Barrier(args.visitors)
        threads = [threading.Thread(target=visitor, args=(i, url, start, deadline, args, results[i]), daemon=True)
                   for i in range(args.visitors)]
        t0 = time.monotonic()
        # On a Space the visitors' clients run elsewhere; here they share the two cores with the server, so the
        # report says how much CPU each side took during the crowd.
        cpu0 = {"clients": cpu_seconds(), "server": cpu_seconds(proc.pid) if proc is not None else None}
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        wall = time.monotonic() - t0
        cpu = {"clients": round(cpu_seconds() - cpu0["clients"], 2),
               "server": round(cpu_seconds(proc.pid) - cpu0["server"], 2) if proc is not None else None}
        for r in results:
            if not r:
                r["error"] = "unfinished at --timeout"
        lost = rows_lost(data_dir / "mo_explorer.sqlite", results) if proc is not None else {}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    report = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_before": load_before,
              "load_after": os.getloadavg(), "asked": f"{args.n} x {args.max_new_tokens}",
              "server_env": args.server_env, **summarise(results, lost, wall), "cpu_s_during_crowd": cpu}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
