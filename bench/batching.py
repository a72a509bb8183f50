"""Would decoding several visitors' rows in one batch serve a crowd sooner? A projection from measured costs.

Run: python bench/batching.py [--visitors 16 --n 2 --max-new-tokens 32 --repeats 3]. A measurement, not a test.

The generator samples one prompt's rows together (one prefill, then one decoding step for all rows); it cannot yet
mix the prompts of several visitors in one batch (each row with its own prompt and position). Before building that,
this script measures what it would buy on this CPU, with the embedded models, from costs it can measure today:

- one after another (what the server does): a visitor's round is `--n` rows x `--max-new-tokens`, generated and
  scored; visitor i gets its first point after the rounds of visitors 1..i;
- batched (projected): the decoding steps of all visitors' rows together, timed as one round of visitors x n rows
  of one prompt (the step cost of a row does not depend on which prompt it continues, save for the attention over
  prompts of different lengths, short here), plus one prefill per other visitor's prompt (timed as a 1-token round)
  and the scoring of every visitor's answers (timed per visitor); every visitor gets its first point at the end.

Prints the CPU (flags, threads, load), then one JSON line with the time to first point at p50 / p95 both ways.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import QUALITY_PROMPTS, cpu_report  # noqa: E402  (bench/bench.py: this folder is on the path)


def timed(fn, *args) -> tuple[float, object]:
    """(seconds, fn(*args))."""
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> dict:
    from mo_explorer.config import Settings
    from mo_explorer.models import registry
    from mo_explorer.schema import GenerationParams

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=16)
    parser.add_argument("--n", type=int, default=2, help="Rows per visitor (the size a crowd is served at).")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(cpu_report()), flush=True)
    settings = Settings.from_env()
    generator, rm = registry.load_generator(settings), registry.load_reward_model(settings)
    prompts = [QUALITY_PROMPTS[i % len(QUALITY_PROMPTS)] for i in range(args.visitors)]
    messages = [[{"role": "user", "content": p}] for p in prompts]
    generator.generate(messages[0], GenerationParams(n=2, max_new_tokens=4))  # first-call costs out of the timing

    def round_of(i: int, n: int, tokens: int, seed: int) -> list:
        return generator.generate(messages[i], GenerationParams(n=n, max_new_tokens=tokens, seed=seed))

    sequential, batched = [], []
    for r in range(args.repeats):
        # one after another: generate and score each visitor's round in turn
        clock, firsts = 0.0, []
        for i in range(args.visitors):
            seconds, gens = timed(round_of, i, args.n, args.max_new_tokens, r)
            clock += seconds + timed(rm.score, messages[i], [g.text for g in gens])[0]
            firsts.append(clock)
        sequential.append(firsts)
        # batched, projected: every row decoded together, one prefill per other prompt, every visitor scored
        decode, rows = timed(round_of, 0, args.visitors * args.n, args.max_new_tokens, r)
        prefill = sum(timed(round_of, i, 1, 1, r)[0] for i in range(1, args.visitors))
        texts = [g.text for g in rows]
        score = sum(timed(rm.score, messages[i], texts[i * args.n:(i + 1) * args.n])[0]
                    for i in range(args.visitors))
        batched.append({"decode_s": decode, "other_prefills_s": prefill, "scoring_s": score,
                        "first_point_s": decode + prefill + score})

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 2)

    seq_all = [v for run in sequential for v in run]
    bat_all = [b["first_point_s"] for b in batched]
    result = {"bench": "batching", "visitors": args.visitors, "rows_per_visitor": args.n,
              "max_new_tokens": args.max_new_tokens, "repeats": args.repeats,
              "one_after_another_first_point_p50_s": pct(seq_all, 50),
              "one_after_another_first_point_p95_s": pct(seq_all, 95),
              "batched_projected_first_point_s": round(statistics.median(bat_all), 2),
              "batched_parts_median_s": {k: round(statistics.median(b[k] for b in batched), 2)
                                         for k in ("decode_s", "other_prefills_s", "scoring_s")},
              **cpu_report()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
