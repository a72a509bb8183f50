"""The likelihood as a ratio, measured against the shipped recipe (issue 15): the likelihood objective read as
log p(response | prompt) - log p(response | an empty user turn), per token, which rewards answers that fit this
request rather than fluent text in general.

Every variant (the shipped likelihood, the full ratio, a half ratio) is trained on the same cached features and
judged the way the shipped head was chosen: every left-out source (validate.loso) and the RM-Bench dev sample.
The unconditional log-probs are one more pass of the likelihood model over each measured response, cached on disk
beside the conditional ones (same spec, the empty turn as the prompt), so a rerun costs seconds.

Usage: python -m mo_explorer.training.likelihood_ratio [train options] --dev DEV
Prints a Markdown table (and writes it as JSON with --ratio-out).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

import numpy as np

from mo_explorer import config
from mo_explorer.training import ablate, recipe, train, validate
from mo_explorer.training.feature_cache import FeatureCache, text_key
from mo_explorer.training.scoring import score_variant

log = logging.getLogger(__name__)

EMPTY_TURN = [{"role": "user", "content": ""}]  # "no prompt", in the chat format the likelihood model reads
# The full ratio and one half-way point, fixed before measuring: two variants, not a sweep tuned to the table.
RATIO_WEIGHTS = (1.0, 0.5)


def unconditional(cache: FeatureCache, spec: dict, texts: list[str], settings: config.Settings) -> np.ndarray:
    """Mean log-prob of each text after an empty user turn (n,), extracted where the cache lacks it."""
    train.fill(cache, spec, [(EMPTY_TURN, t) for t in texts], settings, {})
    return np.array([cache.responses[text_key(EMPTY_TURN, t)][1] for t in texts], np.float64)


def as_ratio(table: recipe.FeatureTable, texts: list[str], cache: FeatureCache, spec: dict,
             settings: config.Settings, weight: float = 1.0) -> recipe.FeatureTable:
    """The table with its measured log-probs minus `weight` times the unconditional ones (NaN rows stay NaN).
    weight 1 is the full ratio (pointwise mutual information); 0.5 keeps half of the fluency signal."""
    out = copy.deepcopy(table)
    rows = np.flatnonzero(np.isfinite(table.logprob))
    if len(rows):
        uncond = unconditional(cache, spec, [texts[i] for i in rows], settings)
        out.logprob[rows] = table.logprob[rows] - weight * uncond
    return out


def ratio_prepared(prep: train.Prepared, cache: FeatureCache, spec: dict, settings: config.Settings,
                   weight: float = 1.0):
    """A copy of the prepared training rows whose likelihood column is the (weighted) ratio."""
    out = copy.copy(prep)
    out.rating_table = as_ratio(prep.rating_table, [r.response for r in prep.ratings], cache, spec, settings, weight)
    out.chosen = as_ratio(prep.chosen, [p.chosen for p in prep.pairs], cache, spec, settings, weight)
    out.rejected = as_ratio(prep.rejected, [p.rejected for p in prep.pairs], cache, spec, settings, weight)
    return out


def run(args: argparse.Namespace, settings: config.Settings) -> dict:
    cfg = train.TrainConfig.from_args(args)
    if cfg.likelihood_pairs <= 0:
        raise SystemExit("--likelihood-pairs must be positive: the ratio replaces the likelihood objective")
    prep = train.prepare(cfg, settings)
    spec = train.run_likelihood_spec(cfg)
    lik = FeatureCache(cfg.features or settings.models.features_dir, spec)
    pairs, chosen, rejected = ablate.dev_tables(cfg, settings, prep.spec, cfg.dev_limit, cfg.seed)
    variants = {"likelihood (shipped recipe)": prep}
    dev_tables = {"likelihood (shipped recipe)": (chosen, rejected)}
    for weight in RATIO_WEIGHTS:
        name = "likelihood ratio" if weight == 1.0 else f"likelihood - {weight:g} x unconditional"
        variants[name] = ratio_prepared(prep, lik, spec, settings, weight)
        dev_tables[name] = (as_ratio(chosen, [p.chosen for p in pairs], lik, spec, settings, weight),
                            as_ratio(rejected, [p.rejected for p in pairs], lik, spec, settings, weight))

    def fit(p, c, subsets):
        return train.fit(p, c, use_likelihood=True, subsets=subsets)

    rows = {}
    for name, p in variants.items():
        folds = validate.loso(p, cfg, fit)
        params, gate, _ = train.fit(p, cfg, use_likelihood=True)
        sc, sr, rc, rr = score_variant(params, gate, *dev_tables[name])
        rows[name] = {"loso": folds, "dev": ablate.summarise(pairs, sc, sr, rc, rr, params.objectives)}
        log.info("%s: LOSO mean %.3f worst %.3f, dev %.3f", name, folds["mean"], folds["worst"],
                 rows[name]["dev"]["accuracy"])
    return {"rows": rows, "markdown": markdown(rows), "command": train.command_line(cfg), "dev": cfg.dev,
            "dev_limit": cfg.dev_limit, "seed": cfg.seed}


def markdown(rows: dict) -> str:
    """One row per variant: each left-out source, mean, worst, RM-Bench dev and its subsets."""
    sources = validate.HELD_OUT_SOURCES
    subsets = sorted({s for r in rows.values() for s in r["dev"]["subsets"]})
    head = ["variant", *sources, "mean", "worst", "RM-Bench dev", *(s.replace("rmbench-", "") for s in subsets)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        folds, dev = r["loso"], r["dev"]
        cells = [f"{100 * folds['folds'][s]['accuracy']:.1f}" if folds["folds"][s]["n"] else "" for s in sources]
        cells += [f"{100 * folds['mean']:.1f}", f"{100 * folds['worst']:.1f}", f"{100 * dev['accuracy']:.1f}"]
        cells += [f"{100 * dev['subsets'][s]['accuracy']:.1f}" if s in dev["subsets"] else "" for s in subsets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    """Command-line entry: the train options, plus --dev (required) and --ratio-out."""
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(prog="mo_explorer.training.likelihood_ratio")
    train.configure(parser)
    parser.add_argument("--ratio-out", default=None, help="Also write the result as JSON here.")
    args = parser.parse_args()
    if not args.dev:
        parser.error("--dev is required")
    result = run(args, config.Settings.from_env())
    if args.ratio_out:
        Path(args.ratio_out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(result["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
