"""`python -m mo_explorer.training.candidates`: the app's own generator answering training prompts.

The reward model ranks answers to one prompt, written by the app's generator. Debiasing an objective against
length over all training responses (ArmoRM's decorrelation, pooled across prompts) removes the length that differs
between prompts: a trunk trained with a length term is already near length-neutral within a prompt, and took
-0.22 Spearman with length within the generator's candidates from that pooled correction. So `train
--debias-candidates FILE` fits each objective's lambda within the prompts of this file instead: 8 candidates of the
embedded generator (the app's default sampling, fixed seed) for prompts drawn from every training source. No label
is read; each candidate keeps its prompt's source, so a leave-one-source-out fold leaves its source's prompts out
of the debiasing too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from mo_explorer import config
from mo_explorer.errors import UserError
from mo_explorer.training import data as D
from mo_explorer.training.sources import RATINGS

# Rated prompts of AlpacaEval are the alpacaeval pairs' prompts: that source is drawn from the pairs.
SKIPPED_RATING_SOURCES = ("alpaca_eval",)
MAX_PROMPT_CHARS = 1000  # a typed request; the longest training prompts would cost minutes each on 2 cores


def sample_prompts(pairs: list[D.PairRow], ratings: list[D.RatingRow], per_source: int, seed: int
                   ) -> list[tuple[str, str]]:
    """[(source, prompt text)]: per_source distinct single-turn prompts from each pair subset and from the rated
    rows (source `ratings`), drawn with `seed`."""
    pools: dict[str, list[str]] = {}
    for p in pairs:
        if len(p.prompt) == 1 and len(p.prompt[0]["content"]) <= MAX_PROMPT_CHARS:
            pools.setdefault(p.subset, []).append(p.prompt[0]["content"])
    for r in ratings:
        if len(r.prompt) == 1 and len(r.prompt[0]["content"]) <= MAX_PROMPT_CHARS \
                and not r.source.startswith(SKIPPED_RATING_SOURCES):
            pools.setdefault(RATINGS, []).append(r.prompt[0]["content"])
    rng = np.random.default_rng(seed)
    out = []
    for source in sorted(pools):
        unique = sorted(set(pools[source]))
        out += [(source, unique[i]) for i in rng.permutation(len(unique))[:per_source]]
    return out


def load(path: str | Path) -> list[dict]:
    """The candidates file: [{"source", "prompt", "texts", "mean_logprob"}], checked."""
    try:
        rows = json.loads(Path(path).read_text())
        assert isinstance(rows, list) and rows
        for row in rows:
            assert isinstance(row["source"], str) and isinstance(row["prompt"], str)
            assert len(row["texts"]) == len(row["mean_logprob"]) >= 2
    except (OSError, json.JSONDecodeError, AssertionError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a candidates file (write one with `python -m mo_explorer.training.candidates "
                        f"--out {path}`): {exc}") from None
    return rows


def kept(sources: list[str], subsets: tuple[str, ...] | None) -> np.ndarray:
    """Mask (n,) of the candidates (by their prompt's source) that a fit on pair `subsets` may use (None: all): a
    left-out source's prompts are left out."""
    if subsets is None:
        return np.ones(len(sources), bool)
    has_ratings = any(s.startswith(RATINGS + "-") for s in subsets)
    return np.array([s in subsets or (s == RATINGS and has_ratings) for s in sources], bool)


def main(argv: list[str] | None = None) -> int:
    """Generate and write the candidates file."""
    from mo_explorer.training.length_check import write_candidates

    parser = argparse.ArgumentParser(prog="mo_explorer.training.candidates", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="Training pairs (their prompts, never their labels).")
    parser.add_argument("--ratings", required=True, help="Training ratings (their prompts).")
    parser.add_argument("--per-source", type=int, default=16, help="Prompts per source.")
    parser.add_argument("--n", type=int, default=8, help="Candidates per prompt.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the prompt draw and of the sampling.")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="Tokens per candidate at most (the app's).")
    parser.add_argument("--out", required=True, help="JSON file to write.")
    args = parser.parse_args(argv)
    drawn = sample_prompts(D.read_pairs(args.pairs), D.read_ratings(args.ratings), args.per_source, args.seed)
    rows = write_candidates(config.Settings.from_env(), [p for _, p in drawn], args.n, args.seed,
                            args.max_new_tokens)
    for (source, _), row in zip(drawn, rows):
        row["source"] = source
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps({"out": args.out, "prompts": len(rows), "candidates": sum(len(r["texts"]) for r in rows)}))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
