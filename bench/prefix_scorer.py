"""Does a prefix scorer rank unfinished answers better than the reward model itself? (issue 28, item 1)

A steered round ranks its rows every `block_tokens` tokens, on partial answers. The reward model was trained on
finished answers; Controlled Decoding's fix is a prefix scorer: heads that predict the *finished* answer's rewards
from its prefix. This script measures whether one beats the plain reward model here, on the generator's own rounds.

Run: python bench/prefix_scorer.py [--prompts 60 --eval-prompts 20]. A measurement, not a test.

1. Prompts: single-turn requests sampled from `train/ratings` (AlpacaEval, XSTest, Auto-J and Prometheus prompts:
   everyday, unsafe, over-refusal and open-ended), split by prompt into a fitting part and an evaluation part.
2. For each prompt, one plain round (8 x 128, the app's sampling) of the embedded generator; every row's prefix is
   cut at each block boundary (16, 32, ... tokens), as the steered round hands it to the guide.
3. The shipped head scores the finished answers (the target) and every prefix (the plain scorer). Two prefix
   scorers, fitted on the fitting prompts only: a ridge regression per objective from the prefix's backbone state and
   the share of the budget written to the finished answer's reward ("prefix"), and the same regression fitted to
   what the plain scorer misses, added to it ("residual": it can only depart from the plain scorer where the
   fitting rounds pay for it).
4. On the evaluation prompts, at each block boundary, over the rows still unfinished there (what the guide ranks):
   the within-round Spearman between the predicted and the finished value, and how often the finished-best row is
   among the 3 rows ranked first (the default survivors), for each objective alone and for 8 directions over the
   plot's default plane. Prints the CPU, then one JSON line (appended to bench/prefix_runs.jsonl).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import cpu_report  # noqa: E402  (bench/bench.py: this folder is on the path)
from mo_explorer.config import Settings  # noqa: E402
from mo_explorer.schema import GenerationParams  # noqa: E402
from mo_explorer.training.ridge import fit_ridge, spearman  # noqa: E402

RATINGS = ROOT.parent / "shared" / "data" / "train" / "ratings.jsonl.gz"
RUNS = Path(__file__).resolve().parent / "prefix_runs.jsonl"
SURVIVORS = 3


def sample_prompts(count: int, seed: int) -> list[str]:
    """Distinct single-turn requests of 20-400 characters, drawn evenly over the rating sources."""
    by_source: dict[str, list[str]] = {}
    with gzip.open(RATINGS, "rt") as f:
        for line in f:
            row = json.loads(line)
            turns = row["prompt"]
            text = turns[-1]["content"] if len(turns) == 1 else ""
            if 20 <= len(text) <= 400:
                by_source.setdefault(row["source"].split("-")[0], []).append(text)
    rng = np.random.default_rng(seed)
    pools = {s: list(dict.fromkeys(v)) for s, v in sorted(by_source.items())}
    for pool in pools.values():
        rng.shuffle(pool)
    picked: list[str] = []
    while len(picked) < count and any(pools.values()):
        for pool in pools.values():
            if pool and len(picked) < count:
                picked.append(pool.pop())
    rng.shuffle(picked)
    return picked


def rounds(prompts: list[str], n: int, max_new_tokens: int, block: int, seed: int) -> list[dict]:
    """Per prompt: finished texts, their token counts, and each row's prefix text at every block boundary."""
    from mo_explorer.models import registry

    settings = Settings.from_env()
    generator = registry.load_generator(settings)
    out = []
    for p, prompt in enumerate(prompts):
        messages = [{"role": "user", "content": prompt}]
        params = GenerationParams(n=n, max_new_tokens=max_new_tokens, temperature=0.8, top_p=0.95, seed=seed + p)
        gens = sorted(generator.generate(messages, params), key=lambda g: g.row)
        cuts = list(range(block, max_new_tokens, block))
        prefixes = {t: [generator.tokenizer.decode(list(g.token_ids[:t]), skip_special_tokens=True) for g in gens]
                    for t in cuts}
        out.append({"prompt": prompt, "texts": [g.text for g in gens], "tokens": [g.n_tokens for g in gens],
                    "prefixes": prefixes})
        logging.info("round %d/%d written", p + 1, len(prompts))
    return out


def score_rounds(data: list[dict], max_new_tokens: int) -> None:
    """Adds the finished rewards, and each prefix's rewards and backbone state, with the shipped head."""
    from mo_explorer.models import registry

    rm = registry.load_reward_model(Settings.from_env())
    for r in data:
        messages = [{"role": "user", "content": r["prompt"]}]
        r["final"] = rm.score(messages, r["texts"]).rewards
        r["prefix"] = {}
        for t, texts in r["prefixes"].items():
            p_state, states, lp = rm.features(messages, texts)
            out = rm.score_features(p_state, states, texts, lp, rm.quality(messages, texts))
            r["prefix"][t] = {"rewards": out.rewards, "states": states, "share": t / max_new_tokens}
    data[0]["objectives"] = list(rm.objectives)


def learned(objectives: list[str], final: np.ndarray) -> list[int]:
    """Objectives the head predicts (not measured ones, which are exact on a finished answer): varying columns."""
    return [j for j, name in enumerate(objectives) if name != "verbosity" and np.std(final[:, j]) > 0]


def fit_prefix_heads(data: list[dict], columns: list[int], residual: bool) -> dict[int, object]:
    """One ridge per objective: [prefix state, budget share] -> the finished answer's reward (or, residual, what
    the plain scorer's reward of the prefix misses of it)."""
    x, y = [], []
    for r in data:
        for pre in r["prefix"].values():
            for row in range(len(r["texts"])):
                x.append(np.append(pre["states"][row], pre["share"]))
                y.append(r["final"][row] - (pre["rewards"][row] if residual else 0.0))
    x, y = np.asarray(x), np.asarray(y)
    return {j: fit_ridge(x, y[:, j], seed=j) for j in columns}


def predict(fits: dict[int, object], states: np.ndarray, share: float) -> np.ndarray:
    x = np.hstack([states, np.full((len(states), 1), share)])
    return np.stack([x @ fits[j].weight + fits[j].intercept for j in sorted(fits)], axis=1)


def directions(columns: list[int], scale: np.ndarray, count: int = 8) -> list[np.ndarray]:
    """Each learned objective alone, then `count` unit vectors over the first two (the plot's default plane),
    in standardised units."""
    k = len(columns)
    dirs = [np.eye(k)[i] for i in range(k)]
    for i in range(count):
        a = 2 * np.pi * i / count
        v = np.zeros(k)
        v[0], v[1] = np.cos(a), np.sin(a)
        dirs.append(v)
    return [d / scale for d in dirs]


def judge(data: list[dict], fits: dict[str, dict], columns: list[int], scale: np.ndarray) -> dict:
    """Within-round Spearman and survivor hit rate of every scorer on the rows unfinished at each boundary."""
    result = {name: {"spearman": [], "hit": []} for name in ("plain", *fits)}
    result["chance_hit"] = []
    for r in data:
        final = r["final"][:, columns]
        tokens = np.asarray(r["tokens"])
        for t, pre in r["prefix"].items():
            live = np.flatnonzero(tokens > t)  # rows still writing at this boundary: what the guide ranks
            if len(live) <= SURVIVORS:
                continue
            plain = pre["rewards"][:, columns]
            guesses = {"plain": plain, "prefix": predict(fits["prefix"], pre["states"], pre["share"]),
                       "residual": plain + predict(fits["residual"], pre["states"], pre["share"])}
            for d in directions(columns, scale):
                truth = final[live] @ d
                best = int(np.argmax(truth))
                result["chance_hit"].append(SURVIVORS / len(live))
                for name, guess in guesses.items():
                    value = guess[live] @ d
                    if np.std(value) > 0 and np.std(truth) > 0:
                        result[name]["spearman"].append(spearman(value, truth))
                    top = np.argsort(-value, kind="stable")[:SURVIVORS]
                    result[name]["hit"].append(float(best in top))
    return result


def mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, np.float64)
    return round(float(a.mean()), 4), round(float(a.std(ddof=1) / np.sqrt(len(a))), 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=60)
    parser.add_argument("--eval-prompts", type=int, default=20)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--block", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds-cache", default="/tmp/prefix_rounds.pkl",
                        help="The written and scored rounds are kept here; a rerun with the same options reads them.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(json.dumps(cpu_report()))
    start = time.perf_counter()
    key = [args.prompts, args.n, args.max_new_tokens, args.block, args.seed]
    cache = Path(args.rounds_cache)
    cached = pickle.loads(cache.read_bytes()) if cache.exists() else None
    if cached is not None and cached["key"] == key:
        data = cached["data"]
    else:
        data = rounds(sample_prompts(args.prompts, args.seed), args.n, args.max_new_tokens, args.block, args.seed)
        score_rounds(data, args.max_new_tokens)
        cache.write_bytes(pickle.dumps({"key": key, "data": data}))
    objectives = data[0]["objectives"]
    columns = learned(objectives, np.concatenate([r["final"] for r in data]))
    fit, held = data[args.eval_prompts:], data[:args.eval_prompts]
    fits = {"prefix": fit_prefix_heads(fit, columns, residual=False),
            "residual": fit_prefix_heads(fit, columns, residual=True)}
    scale = np.concatenate([r["final"][:, columns] for r in fit]).std(0) + 1e-9
    res = judge(held, fits, columns, scale)
    line = {"script": "bench/prefix_scorer.py", "prompts_fit": len(fit), "prompts_eval": len(held), "n": args.n,
            "max_new_tokens": args.max_new_tokens, "block": args.block, "objectives": [objectives[j] for j in columns],
            "alphas": {name: {objectives[j]: f[j].alpha for j in columns} for name, f in fits.items()},
            "seconds": round(time.perf_counter() - start, 1), **cpu_report()}
    for name in ("plain", *fits):
        line[f"spearman_{name}"], line[f"spearman_{name}_se"] = mean_se(res[name]["spearman"])
        line[f"survivor_hit_{name}"], line[f"survivor_hit_{name}_se"] = mean_se(res[name]["hit"])
    line["survivor_hit_chance"] = round(float(np.mean(res["chance_hit"])), 4)
    for name in fits:  # paired over the same (round, boundary, direction) cases
        diff = np.asarray(res[name]["hit"]) - np.asarray(res["plain"]["hit"])
        line[f"hit_gain_{name}"], line[f"hit_gain_{name}_se"] = mean_se(list(diff))
    print(json.dumps(line))
    with RUNS.open("a") as f:
        f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
