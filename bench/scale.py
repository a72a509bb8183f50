"""Rounds per minute with several concurrent sessions: generator in-process vs on a local OpenAI-compatible server.

Run: python bench/scale.py [--sessions 4] [--rounds 2] [--n 2] [--max-new-tokens 16] [--server-url URL --model M].
Without --server-url it starts `transformers serve` on the embedded SmolLM2 (loopback, offline) and stops it after.
Both paths score with the same reward model in this process; each session runs its rounds one after another, the
sessions at once (threads, as a web server's clients would). Prints the CPU (flags, cores, threads), a table, then
one JSON line. A script, not a test: on a small CPU the server competes with this process for the same cores, so
the figures say how the two paths behave here, not what a GPU server gives.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cpu_report  # noqa: E402  (bench/bench.py: run as a script, this folder is on sys.path)
from mo_explorer.config import Settings  # noqa: E402
from mo_explorer.schema import GenerationParams  # noqa: E402

PROMPTS = ["Give me one tip for sleeping better.", "Name a fruit and say why you like it.",
           "What is a prime number?", "Say something kind to a friend."]


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=4, help="Concurrent sessions.")
    p.add_argument("--rounds", type=int, default=2, help="Rounds per session.")
    p.add_argument("--n", type=int, default=2, help="Candidates per round.")
    p.add_argument("--max-new-tokens", type=int, default=16, help="New tokens per candidate.")
    p.add_argument("--server-url", default="", help="An OpenAI-compatible server to use instead of starting one.")
    p.add_argument("--model", default="", help="Model name on --server-url.")
    p.add_argument("--continuous-batching", action="store_true",
                   help="Start transformers serve with --continuous-batching (batches concurrent requests).")
    return p


def rounds_per_minute(explorer, sessions: int, rounds: int, params: GenerationParams) -> dict:
    """Run `sessions` sessions at once, `rounds` rounds each; rounds per minute and per-round latency."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(sessions)

    def session(i: int) -> None:
        sid = explorer.new_session()
        barrier.wait()
        for _ in range(rounds):
            start = time.perf_counter()
            try:
                explorer.run_round(PROMPTS[i % len(PROMPTS)], params, session_id=sid)
            except Exception as exc:  # reported in the table, not raised: the other sessions go on
                with lock:
                    failures.append(str(exc)[:200])
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {"rounds": len(latencies), "failed": len(failures), "wall_s": round(wall, 2),
            "rounds_per_min": round(60 * len(latencies) / wall, 2),
            "median_round_s": round(latencies[len(latencies) // 2], 2) if latencies else None,
            "errors": failures[:3]}


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from mo_explorer.explorer import Explorer
    from mo_explorer.models import embedded, registry
    from mo_explorer.storage.store import Store
    from tests import servers

    settings = Settings.from_env()
    params = GenerationParams(n=args.n, max_new_tokens=args.max_new_tokens, temperature=0.8, top_p=0.95, seed=1)
    reward = registry.load_reward_model(settings)
    tmp = Path(tempfile.mkdtemp(prefix="mo-scale-"))
    results = {}

    local = registry.load_generator(settings)
    explorer = Explorer(settings, local, reward, Store(f"sqlite:///{tmp / 'local.sqlite'}"))
    explorer.run_round("warm up", GenerationParams(n=1, max_new_tokens=2))
    results["in-process"] = rounds_per_minute(explorer, args.sessions, args.rounds, params)
    del local, explorer

    proc = None
    url, model = args.server_url, args.model
    if not url:
        model_dir = embedded.smollm2_dir(settings.models.cache_dir)
        extra = ("--continuous-batching",) if args.continuous_batching else ()
        proc, url = servers.start_transformers_serve(model_dir, tmp, threads=os.cpu_count() or 1, extra=extra)
        model = str(model_dir)
    try:
        served = dataclasses.replace(settings, models=dataclasses.replace(
            settings.models, generator=f"openai:{url}", openai_model=model))
        generator = registry.load_generator(served)
        explorer = Explorer(settings, generator, reward, Store(f"sqlite:///{tmp / 'served.sqlite'}"))
        explorer.run_round("warm up", GenerationParams(n=1, max_new_tokens=2))
        results["openai server"] = rounds_per_minute(explorer, args.sessions, args.rounds, params)
        results["openai server"]["server_honours_n"] = generator.honours_n
    finally:
        if proc is not None:
            servers.stop(proc)

    cpu = cpu_report()
    print(f"CPU: {cpu['cpu']} | flags {' '.join(cpu['flags'])} | {cpu['cores']} cores | torch threads "
          f"{cpu['torch_threads']} | load {cpu['load_avg_1m']}")
    print(f"{args.sessions} sessions x {args.rounds} rounds, n={args.n}, {args.max_new_tokens} tokens, "
          f"reward model {reward.model_id}, server {url}")
    print(f"{'path':<16}{'rounds/min':>12}{'median round s':>16}{'wall s':>9}{'failed':>8}")
    for name, r in results.items():
        print(f"{name:<16}{r['rounds_per_min']:>12}{r['median_round_s']!s:>16}{r['wall_s']:>9}{r['failed']:>8}")
    print(json.dumps({"cpu": cpu, "params": vars(args), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
