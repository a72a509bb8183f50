"""Does writing along the arrow help? Plain rounds against steered rounds at equal token budget, in one run.

Run: python bench/steer.py [--block 32 --survivors 2]. Needs the two half-data heads of bench/steer_heads.py (head
A guides, head B only judges); without them it guides with the shipped head and says so. Prints the CPU (flags,
threads, load), then one JSON line, also appended to bench/steer_runs.jsonl. A script, not a test.

For each of 8 prompts x 8 directions (evenly spaced angles over the guiding head's first two objectives, the plot's
default axes, or over --plane), one plain round and one steered round with the same seed, interleaved. Each round's
top answer is the one the direction ranks first (ranking.rank, as the page does). Its value along the direction is
v . z, with z the answer's rewards on the direction's objectives in standardised units (divided by each objective's
standard deviation over every plain candidate of the run, per head). Reported:
- gain_guiding: mean (steered top - plain top) along the direction, judged by the guiding head; its SE over the 64
  pairs, and a more conservative SE over the 8 per-prompt means (directions of one prompt are not independent);
- gain_eval_head: the same top answers judged by head B, never used for guidance;
- time_ratio: total steered round time / total plain round time;
- length_drift_words and likelihood_drift (the top answers' mean log-prob under the generator: the guiding head's
  likelihood objective, else the round's mean_logprob column), steered minus plain;
- degenerate_plain / degenerate_steered: share of top answers that are empty, cut off by max_new_tokens, or loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import QUALITY_PROMPTS, cpu_report  # noqa: E402  (bench/bench.py: this folder is on the path)
from mo_explorer import ranking  # noqa: E402
from mo_explorer.config import Settings  # noqa: E402
from mo_explorer.schema import Direction, GenerationParams  # noqa: E402

HEADS = Path("/tmp/steer_heads")
RUNS = Path(__file__).resolve().parent / "steer_runs.jsonl"
# Eight more everyday requests for `--prompts 16` (written for this bench, after bench.py's eight): more prompts
# shrink the standard error of the gains, which one prompt's taste can otherwise sway.
MORE_PROMPTS = [
    "How can I make my mornings less rushed?",
    "Write a short thank-you note to a colleague who helped me move house.",
    "What are the pros and cons of electric cars?",
    "Explain what a budget deficit is.",
    "Suggest a simple vegetarian dinner for two.",
    "How do I apologise to a friend whose birthday I forgot?",
    "What is a good way to start learning the guitar?",
    "Describe how a bill becomes law in the United States.",
    # and sixteen more, added before the 32-prompt run of 2026-12-05 (everyday requests, written for this bench)
    "How should I prepare for my first half marathon?",
    "Write a short message inviting my neighbours to a street party.",
    "What is the best way to store fresh herbs?",
    "Explain how vaccines train the immune system.",
    "Give me ideas for a rainy-day activity with two young children.",
    "How do I ask my manager for a raise?",
    "What causes the seasons on Earth?",
    "Suggest a reading list for someone new to science fiction.",
    "How can I reduce my household's food waste?",
    "Explain the difference between a virus and a bacterium.",
    "Write a polite email declining a wedding invitation.",
    "What should I look for when buying a used bicycle?",
    "How do I keep a sourdough starter alive?",
    "Explain what compound interest is with a simple example.",
    "What are some good habits for working from home?",
    "How do I teach my dog to stop pulling on the lead?",
]
STEER_PROMPTS = QUALITY_PROMPTS + MORE_PROMPTS


def degenerate(text: str, n_tokens: int, max_new_tokens: int) -> str | None:
    """Why an answer is degenerate ('empty', 'cut', 'loop'), or None."""
    words = text.split()
    if not words:
        return "empty"
    trigrams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    if len(trigrams) >= 12 and len(set(trigrams)) < 0.5 * len(trigrams):
        return "loop"  # more than half of its word trigrams are repeats
    if n_tokens >= max_new_tokens:
        return "cut"
    return None


def directions(objectives: tuple[str, ...], count: int, plane: str = "") -> list[Direction]:
    """count directions evenly spaced on the circle of a pair of objectives (default: the first two)."""
    pair = tuple(plane.split(",")) if plane else objectives[:2]
    return [Direction(pair, tuple(float(w) for w in ranking.angle_to_weights(360.0 * i / count)))
            for i in range(count)]


def top(rnd, direction: Direction):
    """The candidate the direction ranks first in a round."""
    order = ranking.rank(rnd.reward_matrix(), rnd.maximize, direction, rnd.objectives)
    return rnd.candidates[order.best]


def along(rewards: dict[str, float], direction: Direction, scale: dict[str, float]) -> float:
    """v . z: the answer's standardised rewards on the direction's objectives, along its unit vector."""
    z = np.array([rewards[name] / scale[name] for name in direction.objectives])
    return float(direction.unit() @ z)


def mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")


def run(args) -> dict:
    from mo_explorer.explorer import Explorer
    from mo_explorer.models import registry
    from mo_explorer.storage.store import Store

    guide_dir = HEADS / "head_a" if (HEADS / "head_a" / "config.json").exists() and not args.shipped else None
    eval_dir = HEADS / "head_b"
    settings = Settings.from_env()
    models = dataclasses.replace(settings.models, reward_model=str(guide_dir) if guide_dir else "embedded")
    steering = dataclasses.replace(settings.steering, block_tokens=args.block, survivors=args.survivors,
                                   temperature=args.steer_temperature)
    settings = dataclasses.replace(settings, models=models, steering=steering)
    db = Path(tempfile.mkdtemp()) / "steer.sqlite"
    explorer = Explorer(settings, registry.load_generator(settings), registry.load_reward_model(settings),
                        Store(f"sqlite:///{db}"))
    judge = registry.load_reward_model(dataclasses.replace(settings, models=dataclasses.replace(
        settings.models, reward_model=str(eval_dir)))) if (eval_dir / "config.json").exists() else None
    dirs = directions(tuple(explorer.reward_model.objectives), args.directions, args.plane)
    explorer.run_round("Warm up.", GenerationParams(n=2, max_new_tokens=8))  # first-call costs out of the timing

    pairs, seconds = [], {"plain": 0.0, "steered": 0.0}
    for p, prompt in enumerate(STEER_PROMPTS[:args.prompts]):
        for d, direction in enumerate(dirs):
            params = GenerationParams(n=args.n, max_new_tokens=args.max_new_tokens, temperature=0.8, top_p=0.95,
                                      seed=args.seed_base + 100 * p + d)
            pair = {}
            for mode in (("plain", "steered") if (p + d) % 2 == 0 else ("steered", "plain")):  # interleaved
                start = time.perf_counter()
                rnd = explorer.run_round(prompt, dataclasses.replace(params, steer=direction if mode == "steered"
                                                                     else None), direction=direction)
                seconds[mode] += time.perf_counter() - start
                pair[mode] = rnd
            pairs.append((p, prompt, direction, pair))
            logging.info("prompt %d direction %d done (%.0f s plain, %.0f s steered so far)", p, d,
                         seconds["plain"], seconds["steered"])
    return summarise(args, explorer, judge, pairs, seconds, guide_dir)


def rewards_by_name(rnd, candidate) -> dict[str, float]:
    return dict(zip(rnd.objectives, (float(r) for r in candidate.rewards)))


def summarise(args, explorer, judge, pairs, seconds, guide_dir) -> dict:
    """The figures of one run (see the module docstring)."""
    plain_rows = [rewards_by_name(rnd, c) for *_, pair in pairs for rnd in [pair["plain"]] for c in rnd.candidates]
    names = pairs[0][2].objectives
    scale = {n: float(np.std([r[n] for r in plain_rows])) or 1.0 for n in names}
    gains, by_prompt, lengths, likelihood, bad = [], {}, [], [], {"plain": [], "steered": []}
    judged = {"plain": [], "steered": []}
    for p, _prompt, direction, pair in pairs:
        tops = {mode: top(pair[mode], direction) for mode in pair}
        values = {mode: along(rewards_by_name(pair[mode], tops[mode]), direction, scale) for mode in pair}
        gains.append(values["steered"] - values["plain"])
        by_prompt.setdefault(p, []).append(gains[-1])
        lengths.append(len(tops["steered"].text.split()) - len(tops["plain"].text.split()))
        # the head's likelihood objective, else the generator's own mean log-prob column
        lik = [next((r[k] for k in ("likelihood", "mean_logprob") if k in r), None)
               for r in (rewards_by_name(pair[m], tops[m]) for m in ("steered", "plain"))]
        if None not in lik:
            likelihood.append(lik[0] - lik[1])
        for mode, c in tops.items():
            bad[mode].append(degenerate(c.text, c.n_tokens, args.max_new_tokens))
            if judge is not None:
                out = judge.score(pair[mode].prompt, [c.text])
                judged[mode].append(dict(zip(out.objectives, (float(r) for r in out.rewards[0]))))
    result = {"bench": "steer", "guide_head": str(guide_dir or "shipped data/reward_head"),
              "eval_head": str(HEADS / "head_b") if judge is not None else None,
              "prompts": args.prompts, "directions": args.directions, "n": args.n,
              "max_new_tokens": args.max_new_tokens, "block": args.block, "survivors": args.survivors,
              "steer_temperature": args.steer_temperature, "plane": list(names), "seed_base": args.seed_base}
    result["gain_guiding"], result["gain_guiding_se"] = mean_se(gains)
    result["gain_guiding_se_by_prompt"] = mean_se([float(np.mean(v)) for v in by_prompt.values()])[1]
    if judge is not None:
        eval_scale = {n: float(np.std([r[n] for r in judged["plain"]])) or 1.0 for n in names}
        eval_gains = [along(s, d, eval_scale) - along(q, d, eval_scale)
                      for s, q, (_, _, d, _) in zip(judged["steered"], judged["plain"], pairs)]
        result["gain_eval_head"], result["gain_eval_head_se"] = mean_se(eval_gains)
        per_prompt = {}
        for g, (p, *_rest) in zip(eval_gains, pairs):
            per_prompt.setdefault(p, []).append(g)
        result["gain_eval_head_se_by_prompt"] = mean_se([float(np.mean(v)) for v in per_prompt.values()])[1]
    else:
        result["gain_eval_head"] = result["gain_eval_head_se"] = None
    result["time_ratio"] = seconds["steered"] / seconds["plain"]
    result["seconds_plain"], result["seconds_steered"] = seconds["plain"], seconds["steered"]
    result["length_drift_words"] = float(np.mean(lengths))
    result["likelihood_drift"] = float(np.mean(likelihood)) if likelihood else None
    for mode in ("plain", "steered"):
        result[f"degenerate_{mode}"] = float(np.mean([b is not None for b in bad[mode]]))
        result[f"degenerate_{mode}_why"] = {why: bad[mode].count(why) for why in ("empty", "cut", "loop")}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, choices=range(1, 33), metavar="1..32",
                        help="Prompts: bench.py's eight, then MORE_PROMPTS.")
    parser.add_argument("--directions", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--block", type=int, default=Settings().steering.block_tokens)
    parser.add_argument("--survivors", type=int, default=Settings().steering.survivors)
    parser.add_argument("--steer-temperature", type=float, default=Settings().steering.temperature)
    parser.add_argument("--shipped", action="store_true", help="Guide with the shipped head, not head A.")
    parser.add_argument("--seed-base", type=int, default=0, help="Added to every round's seed (a replication).")
    parser.add_argument("--plane", default="", help="Two objectives 'a,b' the directions turn in (default: the "
                                                    "guiding head's first two, the plot's default axes).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("mo_explorer").setLevel(logging.WARNING)
    cpu = cpu_report()
    print(json.dumps({"cpu": cpu}), flush=True)
    result = {**run(args), "cpu": cpu, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    line = json.dumps(result)
    with open(RUNS, "a") as f:
        f.write(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
