"""Leave-one-source-out validation (`train --validate loso`): how the recipe does on a source it never saw.

A single dev set is one construction; a recipe tuned on it need not carry over. Here each training source is
left out in turn: the heads and the gate are fitted on the other sources' rows and pairs, and scored on the
left-out source's sampled pairs, beside "longer response wins" on the same pairs. Choices of features, rows,
debiasing and gate are to be made by the mean and the worst of these columns.

Sources (folds), as the pairs name them:
- `rmb-helpfulness`, `rmb-harmlessness`, `alpacaeval`: the sampled training pairs of that subset;
- `ratings`: the pairs derived from ratings (`ratings-*` subsets).
Leaving out `alpacaeval` also drops the helpfulness ratings (AlpacaEval's own judge rated the same responses), so
that fold has no helpfulness head, and the `ratings-helpfulness` pairs derived from them leave the gate's training
(until 2026-11-29 they stayed: 6 of the shipped recipe's 600 rating pairs, which the gate's per-subset weighting
counted as much as 948 RMB pairs; AlpacaEval left out read 2.5 points high). Honest limits: the contrastive pairs
(built from every source's texts) stay in every fold's gate training, and the `ratings` fold's heads were fitted
on the rows its pairs come from, so that column measures the gate, not the heads.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from mo_explorer.training import data as D
from mo_explorer.training.metrics import accuracy_summary, pair_correct

log = logging.getLogger(__name__)

RATINGS = "ratings"
HELD_OUT_SOURCES = ("rmb-helpfulness", "rmb-harmlessness", "alpacaeval", RATINGS)
JUDGED_BY_ALPACAEVAL = RATINGS + "-helpfulness"  # pairs of AlpacaEval responses ranked by AlpacaEval's judge


def source_of(pair: D.PairRow) -> str:
    """The fold a training pair belongs to (a source above, or '' for pairs never held out: contrastive ones)."""
    if pair.subset.startswith(RATINGS + "-"):
        return RATINGS
    return pair.subset if pair.subset in HELD_OUT_SOURCES else ""


def longer_wins(pairs: list[D.PairRow]) -> np.ndarray:
    """Per pair: 1 when the chosen response has more words, 0.5 on a tie, 0 otherwise (the length baseline)."""
    c = np.array([len(p.chosen.split()) for p in pairs], float)
    r = np.array([len(p.rejected.split()) for p in pairs], float)
    return pair_correct(c, r)


def fit_without(prep, cfg, source: str, fit):
    """The recipe fitted on everything but `source` -> (indices of its pairs, params, gate); None if it has none."""
    held = [i for i, p in enumerate(prep.pairs) if source_of(p) == source]
    if not held:
        return None
    kept_subsets = tuple(sorted({p.subset for p in prep.pairs if source_of(p) != source
                                 and not (source == "alpacaeval" and p.subset == JUDGED_BY_ALPACAEVAL)}))
    labels = dict(prep.labels)
    if source == "alpacaeval" and "helpfulness" in labels:  # the same responses, rated by the same judge
        labels["helpfulness"] = np.full_like(labels["helpfulness"], np.nan)
    params, gate, _ = fit(dataclasses.replace(prep, labels=labels), cfg, subsets=kept_subsets)
    return held, params, gate


def fold(prep, cfg, source: str, fit) -> dict:
    """Fit on everything but `source` and score its pairs: accuracy with its 95% interval, and longer-wins."""
    from mo_explorer.training.ablate import score_variant

    fitted = fit_without(prep, cfg, source, fit)
    if fitted is None:
        return {"n": 0}
    held, params, gate = fitted
    sc, sr, _, _ = score_variant(params, gate, prep.chosen.take(held), prep.rejected.take(held))
    correct = pair_correct(sc, sr)
    summary = accuracy_summary(correct)
    longer = accuracy_summary(longer_wins([prep.pairs[i] for i in held]))
    names = np.array([prep.pairs[i].subset for i in held])
    # The ratings fold mixes four objectives whose shares move with the rows sampled: per subset, variants compare.
    subsets = {s: {"n": int((names == s).sum()), "accuracy": float(correct[names == s].mean())}
               for s in sorted(set(names))}
    return {"n": len(held), "accuracy": summary["accuracy"], "ci95": summary["ci95"],
            "longer_wins": longer["accuracy"], "objectives": list(params.objectives), "subsets": subsets}


def loso(prep, cfg, fit) -> dict:
    """Every fold, then the mean and the worst over the folds that have pairs."""
    folds = {s: fold(prep, cfg, s, fit) for s in HELD_OUT_SOURCES}
    scored = [f for f in folds.values() if f["n"]]
    for name, f in folds.items():
        if f["n"]:
            log.info("left out %-18s n=%4d accuracy %.3f (longer wins %.3f)", name, f["n"], f["accuracy"],
                     f["longer_wins"])
    return {"folds": folds,
            "mean": float(np.mean([f["accuracy"] for f in scored])) if scored else float("nan"),
            "worst": float(min(f["accuracy"] for f in scored)) if scored else float("nan"),
            "longer_mean": float(np.mean([f["longer_wins"] for f in scored])) if scored else float("nan")}


def markdown(result: dict, dev: dict | None = None) -> str:
    """The table: one row per left-out source, then the mean and the worst; RM-Bench dev when given."""
    lines = ["| left out | pairs | recipe accuracy | 95% interval | longer wins |", "|---|---|---|---|---|"]
    for name, f in result["folds"].items():
        if not f["n"]:
            lines.append(f"| {name} | 0 | | | |")
            continue
        lo, hi = f["ci95"]
        lines.append(f"| {name} | {f['n']} | {100 * f['accuracy']:.1f} | {100 * lo:.0f}-{100 * hi:.0f} | "
                     f"{100 * f['longer_wins']:.1f} |")
    lines.append(f"| **mean** | | **{100 * result['mean']:.1f}** | | {100 * result['longer_mean']:.1f} |")
    lines.append(f"| **worst** | | **{100 * result['worst']:.1f}** | | |")
    if dev is not None:
        lines.append(f"| RM-Bench dev (trained on all sources) | {dev['n']} | {100 * dev['accuracy']:.1f} | | "
                     f"{100 * dev['longer_wins']:.1f} |")
    return "\n".join(lines)
