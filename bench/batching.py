"""Do several visitors' rounds serve a crowd sooner decoded together than one after another? Measured in-process.

Run: python bench/batching.py [--visitors 16 --n 2 --max-new-tokens 32 --repeats 3]. A measurement, not a test.

Each visitor is a thread that asks the embedded generator for its round (`--n` x `--max-new-tokens`, its own
prompt and seed) and then scores it with the embedded reward model, all at once, as a crowd does. Two servers, run
interleaved on the same loaded models: 'one after another' (`models.batch_rows` 0: each round decodes alone on the
model thread, the server before batching) and 'together' (the default: rounds that wait for the model thread are
decoded as one batch, models.batching). For each it reports the time from the crowd's start to each visitor's
scored round (its first point: these rounds are small enough to end together), p50 and p95, and the tokens a
second. Prints the CPU (flags, threads, load), then one JSON line; appends it to bench/batching_runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import QUALITY_PROMPTS, cpu_report  # noqa: E402  (bench/bench.py: this folder is on the path)

LOG = Path(__file__).resolve().parent / "batching_runs.jsonl"


def crowd(generator, rm, messages: list, n: int, tokens: int, seed: int) -> tuple[list[float], int]:
    """Every visitor at once: (seconds to each visitor's scored round, tokens written)."""
    from mo_explorer.schema import GenerationParams

    done, written = [0.0] * len(messages), [0] * len(messages)
    start = time.perf_counter()

    def visit(i: int) -> None:
        gens = generator.generate(messages[i], GenerationParams(n=n, max_new_tokens=tokens, seed=seed + i))
        rm.score(messages[i], [g.text for g in gens])
        done[i], written[i] = time.perf_counter() - start, sum(g.n_tokens for g in gens)

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(len(messages))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done, sum(written)


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
    rows = generator.batch_rows or 64
    prompts = [QUALITY_PROMPTS[i % len(QUALITY_PROMPTS)] for i in range(args.visitors)]
    messages = [[{"role": "user", "content": p}] for p in prompts]
    generator.generate(messages[0], GenerationParams(n=2, max_new_tokens=4))  # first-call costs out of the timing
    times: dict[str, list[float]] = {"one_after_another": [], "together": []}
    tokens_per_s: dict[str, list[float]] = {"one_after_another": [], "together": []}
    for r in range(args.repeats):
        for arm, batch_rows in (("one_after_another", 0), ("together", rows)):  # interleaved, same models
            generator.batch_rows = generator._batcher.max_rows = batch_rows
            firsts, written = crowd(generator, rm, messages, args.n, args.max_new_tokens, 1000 * r)
            times[arm] += firsts
            tokens_per_s[arm].append(written / max(firsts))
            print(f"repeat {r} {arm}: p95 {np.percentile(firsts, 95):.2f} s", flush=True)

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 2)

    result = {"bench": "batching", "when": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
              "visitors": args.visitors, "rows_per_visitor": args.n, "max_new_tokens": args.max_new_tokens,
              "repeats": args.repeats, "batch_rows": rows}
    for arm in times:
        result[f"{arm}_first_point_p50_s"] = pct(times[arm], 50)
        result[f"{arm}_first_point_p95_s"] = pct(times[arm], 95)
        result[f"{arm}_tokens_per_s"] = round(float(np.median(tokens_per_s[arm])), 1)
    result["p95_ratio_together_vs_one_after_another"] = round(
        result["together_first_point_p95_s"] / result["one_after_another_first_point_p95_s"], 2)
    result.update(cpu_report())
    print(json.dumps(result))
    with LOG.open("a") as f:
        f.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
