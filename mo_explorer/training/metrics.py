"""Pairwise evaluation metrics, numpy only: accuracy with intervals, calibration, RM-Bench difficulty split."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mo_explorer.training.ridge import spearman


def wilson_interval(correct: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion correct/n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pair_correct(chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """(n,) 1.0 where chosen scores higher, 0.5 on ties, 0.0 otherwise."""
    return np.where(chosen > rejected, 1.0, np.where(chosen == rejected, 0.5, 0.0))


def accuracy_summary(correct: np.ndarray) -> dict:
    """{"n", "accuracy", "ci95"} of per-pair correctness (n,)."""
    n = int(len(correct))
    acc = float(np.mean(correct)) if n else float("nan")
    lo, hi = wilson_interval(float(np.sum(correct)), n)
    return {"n": n, "accuracy": acc, "ci95": [lo, hi]}


def length_balanced(correct: np.ndarray, len_chosen: np.ndarray, len_rejected: np.ndarray) -> dict:
    """Accuracy where the chosen answer is the longer one, where it is the shorter one, and their mean.

    The mean is the length-balanced accuracy: "longer wins" scores 100 and 0 on the halves, exactly 50 on it, so
    a score that is mostly length cannot pass for a judge of quality. Pairs of equal length are in neither half.
    """
    longer, shorter = len_chosen > len_rejected, len_chosen < len_rejected
    acc_l = float(np.mean(correct[longer])) if longer.any() else float("nan")
    acc_s = float(np.mean(correct[shorter])) if shorter.any() else float("nan")
    # With one half empty the mean is undefined, not the other half: NaN says so.
    return {"longer": acc_l, "shorter": acc_s, "n_longer": int(longer.sum()), "n_shorter": int(shorter.sum()),
            "balanced": (acc_l + acc_s) / 2}


def expected_calibration_error(margin: np.ndarray, n_bins: int = 10) -> float:
    """ECE of the Bradley-Terry probability sigmoid(score_chosen - score_rejected) (n,), by confidence bins."""
    p = 1.0 / (1.0 + np.exp(-np.clip(margin, -50, 50)))
    conf = np.maximum(p, 1 - p)  # the model's confidence in whichever side it prefers
    hit = (p >= 0.5).astype(float)  # it prefers the chosen side: a hit
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf >= lo) & ((conf < hi) if hi < 1.0 else (conf <= hi))
        if sel.any():
            ece += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
    return float(ece)


def difficulty(chosen_style: int | None, rejected_style: int | None) -> str | None:
    """RM-Bench's split: hard when the chosen side is less styled than the rejected one, easy when more."""
    if chosen_style is None or rejected_style is None:
        return None
    if chosen_style < rejected_style:
        return "hard"
    return "normal" if chosen_style == rejected_style else "easy"


def evaluate_pairs(subsets: Sequence[str], chosen: np.ndarray, rejected: np.ndarray,
                   styles: Sequence[tuple[int | None, int | None]] | None = None,
                   rewards_chosen: np.ndarray | None = None, rewards_rejected: np.ndarray | None = None,
                   objectives: Sequence[str] = (), lengths: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Metrics of scores (n,) on n pairs: overall and per-subset accuracy, ECE, per-objective agreement, splits."""
    correct = pair_correct(chosen, rejected)
    subsets = list(subsets)
    out = accuracy_summary(correct)
    out["ece"] = expected_calibration_error(chosen - rejected)
    out["subsets"] = {s: accuracy_summary(correct[[i for i, x in enumerate(subsets) if x == s]])
                      for s in sorted(set(subsets))}
    # Mean of per-subset accuracies: the number RewardBench-style reports use, robust to subset sizes.
    out["subset_mean"] = float(np.mean([v["accuracy"] for v in out["subsets"].values()]))
    if styles is not None:
        split = [difficulty(c, r) for c, r in styles]
        if any(s is not None for s in split):
            out["difficulty"] = {d: accuracy_summary(correct[[i for i, x in enumerate(split) if x == d]])
                                 for d in ("easy", "normal", "hard") if d in split}
    if rewards_chosen is not None and rewards_rejected is not None:
        out["objective_agreement"] = {
            name: {"accuracy": float(np.mean(pair_correct(rewards_chosen[:, j], rewards_rejected[:, j]))),
                   "subsets": {s: float(np.mean(pair_correct(rewards_chosen[sel, j], rewards_rejected[sel, j])))
                               for s in sorted(set(subsets))
                               for sel in [np.array([x == s for x in subsets])]}}
            for j, name in enumerate(objectives)}
    if lengths is not None:
        len_c, len_r = lengths
        out["length_balanced"] = length_balanced(correct, len_c, len_r)
        out["length_balanced"]["subsets"] = {
            s: length_balanced(correct[sel], len_c[sel], len_r[sel])
            for s in sorted(set(subsets)) for sel in [np.array([x == s for x in subsets])]}
        if rewards_chosen is not None and rewards_rejected is not None:
            out["length_balanced"]["objectives"] = {
                name: length_balanced(pair_correct(rewards_chosen[:, j], rewards_rejected[:, j]), len_c, len_r)
                for j, name in enumerate(objectives)}
        out["length_spearman"] = spearman(np.concatenate([chosen, rejected]), np.concatenate([len_c, len_r]))
        longer = pair_correct(len_c.astype(float), len_r.astype(float))
        out["longer_wins"] = {s: float(np.mean(longer[[i for i, x in enumerate(subsets) if x == s]]))
                              for s in sorted(set(subsets))}
        out["longer_wins"]["overall"] = float(np.mean(longer))
    return out


def grouped_folds(groups: list[str], folds: int = 5, seed: int = 0) -> np.ndarray:
    """A fold id (n,) per item, the same for every item of one group (a prompt): k-fold without a group on both
    sides."""
    keys = sorted(set(groups))
    fold_of = dict(zip(keys, np.random.default_rng(seed).permutation(len(keys)) % folds))
    return np.array([fold_of[g] for g in groups])
