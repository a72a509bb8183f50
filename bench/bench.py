"""Speed, memory and quality of a round on the embedded models: the default path against today's, in one run.

Run: python bench/bench.py [--repeats 3] [--quality-prompts 8]. Prints the CPU (model, flags, threads, load), a
table, then one JSON line. A script, not a test: timings depend on the machine and on what else runs on it.

- New path: the settings' defaults (int4 weights + bf16 activations where the CPU has native bf16, the fast
  sampler, the likelihood taken from the generation, candidates scored as they finish).
- Baseline: the path before issue 12 (transformers `generate` with its top-p warper, bf16 on native-bf16 CPUs and
  fp32 elsewhere, the likelihood read again by a float32 SmolLM2 pass), run interleaved with the new path.
- Quality guard: 8 candidates for each of --quality-prompts prompts from both paths, judged the same way (the
  shipped head's score and the float32 mean log-prob, both through the scoring pass).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
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
QUALITY_PROMPTS = [
    "Explain why the sky is blue to a ten-year-old.",
    "Give me three tips for a job interview.",
    "How do I reverse a list in Python?",
    "What should I pack for a weekend hiking trip?",
    "Summarise the plot of Romeo and Juliet in a few sentences.",
    "Is it safe to mix bleach and vinegar for cleaning?",
    "Write a haiku about autumn rain.",
    "What is the difference between weather and climate?",
]
TARGETS = {"round_seconds_8x128": "< 6 (< 4 with native bf16)", "round_speedup_vs_baseline": ">= 2.5",
           "peak_rss_mb": "< 1200", "rerank_ms_64": "< 5", "first_point_seconds": "reported",
           "first_point_lag_seconds": "< 1.5",
           "quality deltas": "within noise"}


def cpu_report() -> dict:
    """CPU model, the vector flags that decide the fast path, cores, torch threads and the load average."""
    import torch

    flags, model = set(), platform.processor()
    try:
        text = open("/proc/cpuinfo").read()
        flags = set(text.split())
        model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                     model)
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni"]
    return {"cpu": model, "flags": [f for f in wanted if f in flags], "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_avg_1m": round(os.getloadavg()[0], 2)}


def stream_timed(explorer, prompt: str, params: GenerationParams) -> tuple[float, float, object]:
    """(seconds to the complete round, seconds to the first stored candidate, the round)."""
    start, first, final = time.perf_counter(), None, None
    for event in explorer.stream_round(prompt, params):
        if event.kind == "scored" and first is None:
            first = time.perf_counter() - start
        final = event.round or final
    return time.perf_counter() - start, first, final


def quality(explorer, judge, params: GenerationParams, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Head score and float32 mean log-prob (scoring pass) of every candidate the explorer writes for prompts."""
    from mo_explorer.models.features import FeatureSpec, load_extractor
    from mo_explorer.training.options import likelihood_spec

    # The float32 likelihood model read directly: the shipped head (since 2026-12-05) has no likelihood objective.
    reader = load_extractor(FeatureSpec.from_json(likelihood_spec()), explorer.settings.models.cache_dir, "cpu")
    scores, logprobs = [], []
    for i, prompt in enumerate(prompts):
        rnd = explorer.run_round(prompt, GenerationParams(**{**params.to_dict(), "seed": i}))
        texts = [c.text for c in rnd.candidates]
        scores.extend(judge.score(rnd.prompt, texts).score.tolist())
        logprobs.extend(reader.encode(rnd.prompt, texts).mean_logprob.tolist())
    return np.asarray(scores), np.asarray(logprobs)


def delta(new: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    """Difference of means and its standard error (independent samples)."""
    return float(new.mean() - base.mean()), float(np.sqrt(new.var(ddof=1) / len(new) + base.var(ddof=1) / len(base)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Rounds per path (medians reported).")
    parser.add_argument("--new-tokens", type=int, default=128, help="New tokens per candidate.")
    parser.add_argument("--quality-prompts", type=int, default=8, help="Prompts of 8 candidates in the quality "
                        "guard (0 skips it).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from mo_explorer.explorer import Explorer
    from mo_explorer.models import registry
    from mo_explorer.models.device import cpu_supports_bf16
    from mo_explorer.models.generator import Generator
    from mo_explorer.storage.store import Store

    print("machine:", json.dumps(cpu_report()))
    settings = Settings.from_env({**os.environ, "MO_EXPLORER_DATABASE_URL": "sqlite://"})
    m = settings.models
    load_start = time.perf_counter()
    generator = registry.load_generator(settings)
    reward_model = registry.load_reward_model(settings)
    load_s = time.perf_counter() - load_start
    explorer = Explorer(settings, generator, reward_model, Store("sqlite://"))
    params = GenerationParams(n=8, max_new_tokens=args.new_tokens, temperature=0.8, top_p=0.95, seed=0)
    explorer.run_round(PROMPT, GenerationParams(n=2, max_new_tokens=4))  # warm-up

    # The new path alone first, so its peak memory is not the baseline's.
    new_rounds = [stream_timed(explorer, PROMPT, params)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    texts = [c.text for c in new_rounds[0][2].candidates]
    scoring_s = _time(lambda: reward_model.score(PROMPT, texts, mean_logprob=np.full(len(texts), -1.0)), 3)

    base_dtype = "bfloat16" if cpu_supports_bf16() else "float32"
    baseline = Generator.load(m.generator, cache_dir=m.cache_dir, device=m.device, dtype=base_dtype,
                              sampler="transformers", threads=m.threads)
    base_explorer = Explorer(settings, baseline, reward_model, Store("sqlite://"))
    base_explorer.run_round(PROMPT, GenerationParams(n=2, max_new_tokens=4))  # warm-up (loads the fp32 pass)
    base_rounds = []
    for i in range(args.repeats):  # interleaved, so load changes hit both paths alike
        base_rounds.append(stream_timed(base_explorer, PROMPT, params))
        if i + 1 < args.repeats:
            new_rounds.append(stream_timed(explorer, PROMPT, params))
    round_s = statistics.median(r[0] for r in new_rounds)
    first_s = statistics.median(r[1] for r in new_rounds)
    # From the first candidate ending (its gen_seconds, timed from the start of generation) to it being stored.
    lag_s = statistics.median(r[1] - min(c.gen_seconds for c in r[2].candidates) for r in new_rounds)
    base_s = statistics.median(r[0] for r in base_rounds)
    base_first_s = statistics.median(r[1] for r in base_rounds)

    rng = np.random.default_rng(0)
    R64 = rng.random((64, 7)).astype(np.float32)
    names = tuple(f"o{i}" for i in range(7))
    direction = Direction(names, tuple(rng.normal(size=7)))
    ranking.rank(R64, (True,) * 6 + (False,), direction, names)
    rerank_s = _time(lambda: ranking.rank(R64, (True,) * 6 + (False,), direction, names), 200)

    result = {
        "round_seconds_8x128": round(round_s, 2),
        "round_speedup_vs_baseline": round(base_s / round_s, 2),
        "first_point_seconds": round(first_s, 2),
        "first_point_lag_seconds": round(lag_s, 2),
        "scoring_seconds_8x128": round(scoring_s, 3),
        "peak_rss_mb": round(peak_mb, 1),
        "rerank_ms_64": round(rerank_s * 1000, 3),
    }
    if args.quality_prompts:
        prompts = QUALITY_PROMPTS[: args.quality_prompts]
        q_new = quality(explorer, reward_model, params, prompts)
        q_base = quality(base_explorer, reward_model, params, prompts)
        (score_d, score_se), (lp_d, lp_se) = delta(q_new[0], q_base[0]), delta(q_new[1], q_base[1])
        result.update({"score_delta": round(score_d, 4), "score_delta_se": round(score_se, 4),
                       "logprob_delta": round(lp_d, 4), "logprob_delta_se": round(lp_se, 4)})
    print(f"new path: generator {generator.model_id} ({generator.dtype}, {generator.sampler} sampler), "
          f"reward {reward_model.model_id}; models loaded in {load_s:.1f} s")
    print(f"baseline: {baseline.dtype}, {baseline.sampler} sampler, likelihood by a float32 scoring pass")
    for name, rounds in (("new", new_rounds), ("baseline", base_rounds)):
        print(f"  {name:8s} rounds 8 x {args.new_tokens}: " + ", ".join(f"{r[0]:.2f} s (first point {r[1]:.2f} s)"
                                                                     for r in rounds))
    print(f"round median: new {round_s:.2f} s, baseline {base_s:.2f} s (first point {first_s:.2f} s vs "
          f"{base_first_s:.2f} s); scoring 8 responses in a round {scoring_s:.3f} s; peak RSS {peak_mb:.0f} MB")
    if args.quality_prompts:
        print(f"quality over {8 * len(prompts)} candidates each: head score new {q_new[0].mean():.3f} vs baseline "
              f"{q_base[0].mean():.3f}; fp32 mean log-prob {q_new[1].mean():.3f} vs {q_base[1].mean():.3f} "
              f"(differences with standard errors in the JSON)")
    print("load after the run:", round(os.getloadavg()[0], 2))
    print("targets: " + ", ".join(f"{k} {v}" for k, v in TARGETS.items()))
    print(json.dumps(result))
    return 0


def _time(fn, repeats: int) -> float:
    """Median wall seconds of fn() over repeats."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())
