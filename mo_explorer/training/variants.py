"""`python -m mo_explorer.training.variants <train options> --variant NAME:OPTIONS ...`: recipes side by side.

Features are prepared once (the train options' sample); each variant changes train options (for example
`"no verbosity in score:--no-verbosity-in-score --gate-shrink 0.5"`) and is judged the way a head is chosen: every
left-out source raw and length-balanced, their mean and worst, and the RM-Bench dev sample with its subsets, raw
and length-balanced. "longer wins" is printed on the same pairs. Writes the table to --table (Markdown) and
--json. The first variant is the train options as given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
from pathlib import Path

import numpy as np

from mo_explorer import config
from mo_explorer.training import ablate, train, validate
from mo_explorer.training.scoring import score_variant
from mo_explorer.training.sources import HELD_OUT_SOURCES, word_lengths

log = logging.getLogger(__name__)


# Options that only decide what `train.prepare` samples and extracts, once for every variant: a variant that changed
# one would be fitted on the first variant's features under its own name. Compare them in separate runs.
PREPARED_ONCE = ("backbone", "layer", "features", "pairs", "ratings", "pairs_limit", "per_objective", "per_prompt",
                 "contrastive", "fact_pairs", "rating_pairs", "likelihood_contrastive", "likelihood_model",
                 "likelihood_tokens", "rows_cached_by", "dev", "dev_limit")


def variant_config(cfg: train.TrainConfig, options: str) -> train.TrainConfig:
    """cfg with the train options in `options` (a command-line fragment) applied on top; SystemExit when they
    change what is prepared once for every variant (PREPARED_ONCE)."""
    parser = argparse.ArgumentParser()
    train.configure(parser)
    defaults = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    defaults["per_objective"] = json.dumps(cfg.per_objective)
    defaults["grouped"] = list(cfg.grouped)
    parser.set_defaults(**defaults)
    args = parser.parse_args(["--ratings", cfg.ratings, "--pairs", cfg.pairs, *shlex.split(options)])
    variant = train.TrainConfig.from_args(args)
    changed = [name for name in PREPARED_ONCE if getattr(variant, name) != getattr(cfg, name)]
    # The likelihood rows are sampled once: a variant may drop the objective (0), not add it or resample it; an
    # added one would silently be fitted without likelihood features.
    if variant.likelihood_pairs not in (0, cfg.likelihood_pairs):
        changed.append("likelihood_pairs")
    # The trunk's out-of-fold quality is read once too: a variant may drop it (--trunk ''), not swap in another trunk,
    # which would be judged on the first trunk's quality under its own name.
    if variant.trunk and variant.trunk != cfg.trunk:
        changed.append("trunk")
    if changed:
        raise SystemExit(f"variant {options!r} changes {', '.join(changed)}: the features and samples are prepared "
                         "once for every variant, so compare those in separate runs (the same --rows-cached-by)")
    return variant


def judge(prep: train.Prepared, cfg: train.TrainConfig, dev) -> dict:
    """LOSO and dev results of one variant (fitted on prep's features)."""
    def fit(p, c, subsets):
        return train.fit(p, c, use_likelihood=c.likelihood_pairs > 0, subsets=subsets)

    folds = validate.loso(prep, cfg, fit)
    params, gate, _ = train.fit(prep, cfg, use_likelihood=cfg.likelihood_pairs > 0)
    pairs, chosen, rejected = dev
    sc, sr, rc, rr = score_variant(params, gate, chosen, rejected)
    return {"loso": folds, "dev": ablate.summarise(pairs, sc, sr, rc, rr, params.objectives)}


def _pct(x: float) -> str:
    return "" if x != x else f"{100 * x:.1f}"


def markdown(rows: dict, longer: dict) -> str:
    """One row per variant: each left-out source length-balanced (raw), mean and worst of both, RM-Bench dev and
    its subsets length-balanced (raw)."""
    subsets = sorted({s for r in rows.values() for s in r["dev"]["subsets"]})
    head = ["variant", *HELD_OUT_SOURCES, "LB mean", "LB worst", "raw mean", "raw worst", "RM-Bench LB (raw)",
            *(s.replace("rmbench-", "") for s in subsets)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        f, dev = r["loso"], r["dev"]
        cells = [f"{_pct(f['folds'][s]['length_balanced']['balanced'])} ({_pct(f['folds'][s]['accuracy'])})"
                 if f["folds"][s]["n"] else "" for s in HELD_OUT_SOURCES]
        cells += [f"**{_pct(f['balanced_mean'])}**", f"**{_pct(f['balanced_worst'])}**", _pct(f["mean"]),
                  _pct(f["worst"]),
                  f"{_pct(dev['length_balanced']['balanced'])} ({_pct(dev['accuracy'])})"]
        lbs = dev["length_balanced"]["subsets"]
        cells += [f"{_pct(lbs[s]['balanced'])} ({_pct(dev['subsets'][s]['accuracy'])})" for s in subsets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| longer wins (raw) | " + " | ".join(_pct(longer[s]) for s in HELD_OUT_SOURCES)
                 + f" | 50.0 | 50.0 | | | 50.0 ({_pct(longer['dev'])}) |" + " |" * len(subsets))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Prepare once, judge every variant, print and write the table."""
    parser = argparse.ArgumentParser(prog="mo_explorer.training.variants", description=__doc__.splitlines()[0])
    train.configure(parser)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:OPTIONS, train options applied on top of the others (repeatable).")
    parser.add_argument("--table", default=None, help="Write the Markdown table here.")
    parser.add_argument("--json", default=None, help="Write every result here.")
    args = parser.parse_args(argv)
    settings = config.Settings.from_env()
    cfg = train.TrainConfig.from_args(args)
    if not cfg.dev:
        raise SystemExit("--dev is required: every variant is judged on it too")
    prep = train.prepare(cfg, settings)
    dev = ablate.dev_tables(cfg, settings, prep.spec, cfg.dev_limit, cfg.seed)
    variants = {"as given": cfg}
    for spec in args.variant:
        name, _, options = spec.partition(":")
        variants[name] = variant_config(cfg, options)
    rows = {}
    for name, c in variants.items():
        rows[name] = judge(prep, c, dev)
        f = rows[name]["loso"]
        log.info("%s: LOSO length-balanced mean %.3f worst %.3f (raw %.3f / %.3f), dev LB %.3f", name,
                 f["balanced_mean"], f["balanced_worst"], f["mean"], f["worst"],
                 rows[name]["dev"]["length_balanced"]["balanced"])
    longer = {s: rows["as given"]["loso"]["folds"][s].get("longer_wins", float("nan")) for s in HELD_OUT_SOURCES}
    len_c, len_r = word_lengths(dev[0])
    longer["dev"] = float(np.mean(np.where(len_c > len_r, 1.0, np.where(len_c == len_r, 0.5, 0.0))))
    table = (f"`{train.command_line(cfg)}`, variants as named; cells: length-balanced (raw).\n\n"
             + markdown(rows, longer))
    print(table)
    if args.table:
        Path(args.table).write_text(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({n: r for n, r in rows.items()}, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
