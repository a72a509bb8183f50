"""Leave-one-source-out validation (`train --validate loso`): how the recipe does on a source it never saw.

A single dev set is one construction; a recipe tuned on it need not carry over. Here each training source is
left out in turn: the heads and the gate are fitted on the other sources' rows and pairs, and scored on the
left-out source's sampled pairs, beside "longer response wins" on the same pairs. Choices of features, rows,
debiasing and gate are to be made by the mean and the worst of these columns.

Sources are those of `sources.py`. Every table reports raw accuracy and the length-balanced one (the mean of the
accuracy where the chosen answer is the longer and where it is the shorter): "longer wins" scores 50 on it.
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

from mo_explorer.training.metrics import accuracy_summary, length_balanced, pair_correct
from mo_explorer.training.scoring import score_variant
from mo_explorer.training.sources import HELD_OUT_SOURCES, JUDGED_BY_ALPACAEVAL, longer_wins, source_of, word_lengths

log = logging.getLogger(__name__)

__all__ = ["HELD_OUT_SOURCES", "fit_without", "fold", "longer_wins", "loso", "markdown", "source_of"]


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
    """Fit on everything but `source` and score its pairs: accuracy with its 95% interval, length-balanced
    accuracy (also of each objective alone), and longer-wins."""
    fitted = fit_without(prep, cfg, source, fit)
    if fitted is None:
        return {"n": 0}
    held, params, gate = fitted
    sc, sr, rc, rr = score_variant(params, gate, prep.chosen.take(held), prep.rejected.take(held))
    correct = pair_correct(sc, sr)
    summary = accuracy_summary(correct)
    pairs = [prep.pairs[i] for i in held]
    len_c, len_r = word_lengths(pairs)
    names = np.array([p.subset for p in pairs])
    # The ratings fold mixes four objectives whose shares move with the rows sampled: per subset, variants compare.
    subsets = {s: {"n": int((names == s).sum()), "accuracy": float(correct[names == s].mean()),
                   "balanced": length_balanced(correct[names == s], len_c[names == s], len_r[names == s])["balanced"]}
               for s in sorted(set(names))}
    objectives = {name: length_balanced(pair_correct(rc[:, j], rr[:, j]), len_c, len_r)
                  for j, name in enumerate(params.objectives)}
    for name, row in objectives.items():
        row["accuracy"] = float(np.mean(pair_correct(rc[:, params.objectives.index(name)],
                                                     rr[:, params.objectives.index(name)])))
    return {"n": len(held), "accuracy": summary["accuracy"], "ci95": summary["ci95"],
            "length_balanced": length_balanced(correct, len_c, len_r),
            "longer_wins": float(longer_wins(pairs).mean()), "objectives": list(params.objectives),
            "objective_accuracy": objectives, "subsets": subsets}


def loso(prep, cfg, fit) -> dict:
    """Every fold, then the mean and the worst over the folds that have pairs, raw and length-balanced."""
    folds = {s: fold(prep, cfg, s, fit) for s in HELD_OUT_SOURCES}
    scored = [f for f in folds.values() if f["n"]]
    for name, f in folds.items():
        if f["n"]:
            lb = f["length_balanced"]
            log.info("left out %-18s n=%4d accuracy %.3f length-balanced %.3f (chosen longer %.3f, shorter %.3f; "
                     "longer wins %.3f)", name, f["n"], f["accuracy"], lb["balanced"], lb["longer"], lb["shorter"],
                     f["longer_wins"])

    def over(values: list[float]) -> tuple[float, float]:
        return (float(np.mean(values)), float(min(values))) if values else (float("nan"), float("nan"))

    mean, worst = over([f["accuracy"] for f in scored])
    lb_mean, lb_worst = over([f["length_balanced"]["balanced"] for f in scored])
    return {"folds": folds, "mean": mean, "worst": worst, "balanced_mean": lb_mean, "balanced_worst": lb_worst,
            "longer_mean": over([f["longer_wins"] for f in scored])[0]}


def _pct(x: float) -> str:
    return "" if x != x else f"{100 * x:.1f}"  # NaN (a half with no pairs) prints empty


def markdown(result: dict, dev: dict | None = None) -> str:
    """The table: one row per left-out source (raw, its interval, the two length halves, length-balanced), then the
    mean and the worst; RM-Bench dev when given."""
    lines = ["| left out | pairs | accuracy | 95% interval | chosen longer | chosen shorter | length-balanced | "
             "longer wins |", "|---|---|---|---|---|---|---|---|"]
    for name, f in result["folds"].items():
        if not f["n"]:
            lines.append(f"| {name} | 0 | | | | | | |")
            continue
        lo, hi = f["ci95"]
        lb = f["length_balanced"]
        lines.append(f"| {name} | {f['n']} | {_pct(f['accuracy'])} | {100 * lo:.0f}-{100 * hi:.0f} | "
                     f"{_pct(lb['longer'])} ({lb['n_longer']}) | {_pct(lb['shorter'])} ({lb['n_shorter']}) | "
                     f"**{_pct(lb['balanced'])}** | {_pct(f['longer_wins'])} |")
    lines.append(f"| **mean** | | {_pct(result['mean'])} | | | | **{_pct(result['balanced_mean'])}** | "
                 f"{_pct(result['longer_mean'])} |")
    lines.append(f"| **worst** | | {_pct(result['worst'])} | | | | **{_pct(result['balanced_worst'])}** | |")
    if dev is not None:
        lb = dev.get("length_balanced", {})
        lines.append(f"| RM-Bench dev (trained on all sources) | {dev['n']} | {_pct(dev['accuracy'])} | | "
                     f"{_pct(lb.get('longer', float('nan')))} | {_pct(lb.get('shorter', float('nan')))} | "
                     f"**{_pct(lb.get('balanced', float('nan')))}** | {_pct(dev['longer_wins']['overall'])} |")
    return "\n".join(lines)


def objective_markdown(result: dict) -> str:
    """Each objective alone on each left-out source: length-balanced accuracy (raw in brackets)."""
    folds = {k: f for k, f in result["folds"].items() if f["n"]}
    names = list(dict.fromkeys(n for f in folds.values() for n in f["objective_accuracy"]))
    lines = ["| objective | " + " | ".join(folds) + " | length-balanced mean |", "|---|" + "---|" * (len(folds) + 1)]
    for name in names:
        cells = [f["objective_accuracy"].get(name) for f in folds.values()]
        bal = [c["balanced"] for c in cells if c is not None and c["balanced"] == c["balanced"]]
        lines.append(f"| {name} | " + " | ".join(
            "" if c is None else f"{_pct(c['balanced'])} ({_pct(c['accuracy'])})" for c in cells)
            + f" | {_pct(float(np.mean(bal))) if bal else ''} |")
    return "\n".join(lines)


def trust_summary(result: dict, dev: dict | None = None) -> dict:
    """What the page shows of this table: each objective's length-balanced accuracy alone (mean over the left-out
    sources), and the score's length-balanced mean and worst (with RM-Bench dev's when given)."""
    folds = [f for f in result["folds"].values() if f["n"]]
    names = list(dict.fromkeys(n for f in folds for n in f["objective_accuracy"]))
    objectives = {}
    for name in names:
        cells = [f["objective_accuracy"][name]["balanced"] for f in folds if name in f["objective_accuracy"]]
        cells = [c for c in cells if c == c]
        objectives[name] = float(np.mean(cells)) if cells else float("nan")
    score = {"balanced_mean": result["balanced_mean"], "balanced_worst": result["balanced_worst"],
             "raw_mean": result["mean"]}
    if dev is not None and "length_balanced" in dev:
        score["rmbench_balanced"] = dev["length_balanced"]["balanced"]
        score["rmbench_raw"] = dev["accuracy"]
    return {"objectives": objectives, "score": score,
            "measured_by": "train --validate loso (leave-one-source-out), length-balanced"}
