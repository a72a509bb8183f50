"""Speed and memory of the core on the embedded models, measured side by side in one run.

Run: python bench/bench.py [--repeats 3]. Prints a table, then one JSON line with the measured figures and
their targets (batched generation >= 3x, prefix scoring >= 3x, rerank of 64 < 5 ms, round 8x128 < 6 s,
peak RSS < 1500 MB). A script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mo_explorer import ranking  # noqa: E402
from mo_explorer.config import Settings  # noqa: E402
from mo_explorer.schema import Direction, GenerationParams  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
TARGETS = {"batched_generation_speedup": ">= 3", "prefix_scoring_speedup": ">= 3", "rerank_ms_64": "< 5",
           "round_seconds_8x128": "< 6", "peak_rss_mb": "< 1500"}


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall seconds of fn() over repeats, and its last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Repeats per timing (median reported).")
    parser.add_argument("--new-tokens", type=int, default=128, help="New tokens per candidate.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from mo_explorer.explorer import Explorer
    from mo_explorer.models import registry
    from mo_explorer.storage.store import Store

    settings = Settings.from_env({**__import__("os").environ, "MO_EXPLORER_DATABASE_URL": "sqlite://"})
    generator = registry.load_generator(settings)
    reward_model = registry.load_reward_model(settings)
    explorer = Explorer(settings, generator, reward_model, Store("sqlite://"))
    messages = [{"role": "user", "content": PROMPT}]
    # Keep every candidate running to the full length, so both sides decode the same number of tokens.
    params = GenerationParams(n=8, max_new_tokens=args.new_tokens, temperature=0.8, top_p=0.95, seed=0)
    one = GenerationParams(n=1, max_new_tokens=args.new_tokens, temperature=0.8, top_p=0.95, seed=0)
    generator.generate(messages, GenerationParams(n=1, max_new_tokens=4))  # warm-up

    batched_s, gens = timed(lambda: generator.generate(messages, params), args.repeats)
    sequential_s, _ = timed(lambda: [generator.generate(messages, one) for _ in range(8)], 1)
    texts = [g.text for g in gens]
    tokens_batched = sum(g.n_tokens for g in gens)

    reward_model.score(messages, texts[:1])  # warm-up
    prefix_s, _ = timed(lambda: reward_model.score(messages, texts), args.repeats)
    full_s, _ = timed(lambda: reward_model.score_full_pass(messages, texts), args.repeats)

    rng = np.random.default_rng(0)
    R64 = rng.random((64, 7)).astype(np.float32)
    names = tuple(f"o{i}" for i in range(7))
    maximize = (True,) * 6 + (False,)
    direction = Direction(names, tuple(rng.normal(size=7)))
    ranking.rank(R64, maximize, direction, names)
    rerank_s, _ = timed(lambda: ranking.rank(R64, maximize, direction, names), 200)

    round_s, rnd = timed(lambda: explorer.run_round(PROMPT, params), args.repeats)
    stored = explorer.get_round(rnd.round_id, rnd.session_id)
    rerank_stored_s, _ = timed(lambda: explorer.rerank(stored.round_id, explorer.default_direction(stored),
                                                       stored.session_id, store=False), 20)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    result = {
        "batched_generation_speedup": round(sequential_s / batched_s, 2),
        "prefix_scoring_speedup": round(full_s / prefix_s, 2),
        "rerank_ms_64": round(rerank_s * 1000, 3),
        "round_seconds_8x128": round(round_s, 2),
        "peak_rss_mb": round(peak_mb, 1),
    }
    print(f"generator {generator.model_id} ({getattr(generator, 'dtype', '?')}), reward {reward_model.model_id}")
    print(f"8 x {args.new_tokens} tokens: one batched call {batched_s:.2f} s ({tokens_batched} tokens), "
          f"8 sequential calls {sequential_s:.2f} s")
    print(f"scoring 8 responses: shared prompt {prefix_s:.2f} s, one full pass each {full_s:.2f} s")
    print(f"rerank 64 candidates: {rerank_s * 1000:.3f} ms (stored round of 8 via Explorer: "
          f"{rerank_stored_s * 1000:.2f} ms)")
    print(f"round (generate + score + store) 8 x {args.new_tokens}: {round_s:.2f} s; peak RSS {peak_mb:.0f} MB")
    print("targets: " + ", ".join(f"{k} {v}" for k, v in TARGETS.items()))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
