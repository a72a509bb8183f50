"""The two-stage recipe on cached features, numpy only (the gate itself is trained in models.gate_trainer).

Rewards are standardised per objective over the training responses (0 = an average training response, 1 = one
standard deviation better), so the gate mixes comparable scales and the UI shows comparable axes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from mo_explorer.training.ridge import debias_lambda, debias_transform, fit_bradley_terry, fit_ridge, spearman

log = logging.getLogger(__name__)

LIKELIHOOD = "likelihood"
PREFERENCE = "preference"
QUALITY = "quality"  # the trained trunk's score (models/trunk.py), out-of-fold on training pairs
PREFERENCE_FOLDS = 5
VERBOSITY = "verbosity"
LOGIT_TARGETS = ("helpfulness",)  # skewed win probabilities: regress their logit


@dataclass
class FeatureTable:
    """Aligned features of n (prompt, response) rows."""

    prompt_states: np.ndarray  # (n, Dg)
    response_states: np.ndarray  # (n, D)
    logprob: np.ndarray  # (n,) NaN where the likelihood model was not run
    words: np.ndarray  # (n,) whitespace words of the response
    quality: np.ndarray | None = None  # (n,) the trunk's quality, NaN where it has none (None: NaN everywhere)

    def __post_init__(self):
        if self.quality is None:
            self.quality = np.full(len(self.words), np.nan)

    def take(self, idx) -> FeatureTable:
        """Rows idx of this table."""
        return FeatureTable(self.prompt_states[idx], self.response_states[idx], self.logprob[idx], self.words[idx],
                            self.quality[idx])


@dataclass
class HeadParams:
    """Everything a head directory stores except the gate: linear heads, offsets, measured stats, transform."""

    objectives: tuple[str, ...]
    weight: np.ndarray  # (k, D), zero rows for measured objectives
    offset: np.ndarray  # (k,)
    measured: dict[str, dict]
    transform: np.ndarray  # (k, k)
    stage1: dict = field(default_factory=dict)  # validation metrics per objective


def target(name: str, y: np.ndarray) -> np.ndarray:
    """Regression target: logit of clipped win probabilities for skewed objectives, else the label."""
    if name in LOGIT_TARGETS:
        p = np.clip(y, 0.02, 0.98)
        return np.log(p / (1 - p))
    return y


def centre_by_group(y: np.ndarray, groups: list[str]) -> np.ndarray:
    """y (n,) minus the mean of its group: only differences between responses to one prompt remain."""
    keys = np.array(groups)
    out = y.astype(np.float64).copy()
    for g in set(groups):
        sel = keys == g
        out[sel] -= y[sel].mean()
    return out


def fit_heads(table: FeatureTable, labels: dict[str, np.ndarray], learned: tuple[str, ...],
              measured: tuple[str, ...], seed: int = 0, centred: dict[str, list[str]] | None = None) -> HeadParams:
    """Stage 1: one ridge per learned objective on rows where labels[name] (n,) is finite; measured stats.

    Objectives in `centred` regress within-prompt differences (targets minus their prompt group's mean).
    """
    centred = centred or {}
    objectives = learned + measured
    d = table.response_states.shape[1]
    weight = np.zeros((len(objectives), d))
    offset = np.zeros(len(objectives))
    stage1 = {}
    for j, name in enumerate(learned):
        y = labels[name]
        rows = np.isfinite(y)
        t = target(name, y[rows])
        if name in centred:
            t = centre_by_group(t, [g for g, ok in zip(centred[name], rows) if ok])
        fit = fit_ridge(table.response_states[rows], t, seed=seed)
        pred = table.response_states @ fit.weight + fit.intercept
        mu, sd = float(pred.mean()), float(pred.std() + 1e-9)
        weight[j], offset[j] = fit.weight / sd, (fit.intercept - mu) / sd
        stage1[name] = {"rows": int(rows.sum()), "alpha": fit.alpha, "val_spearman": fit.val_spearman,
                        "n_train": fit.n_train, "n_val": fit.n_val}
        log.info("stage 1 %-12s rows %5d alpha %8.1f val Spearman %.3f", name, rows.sum(), fit.alpha,
                 fit.val_spearman)
    stats = {}
    for name in measured:
        raw = _measured_raw(name, table)
        ok = np.isfinite(raw)
        stats[name] = {"source": MEASURED_SOURCE[name],
                       "mean": float(raw[ok].mean()), "std": float(raw[ok].std() + 1e-9)}
    return HeadParams(objectives, weight, offset, stats, np.eye(len(objectives)), stage1)


def add_preference_head(params: HeadParams, reference: FeatureTable, chosen: FeatureTable, rejected: FeatureTable,
                        weights: np.ndarray, l2: float, seed: int = 0) -> np.ndarray:
    """Append a learned `preference` objective to params (before any measured one): a Bradley-Terry head on the
    pairs' response-state differences, standardised over `reference` rows like the rated heads.

    Returns its cross-fitted margins on these pairs (each pair scored by a head fitted without it, same scale):
    the gate is trained on the same pairs, and in-sample margins would make it trust this head more than it
    deserves on unseen data.
    """
    diff = chosen.response_states - rejected.response_states
    w = fit_bradley_terry(diff, weights, l2)
    pred = reference.response_states @ w
    mu, sd = float(pred.mean()), float(pred.std() + 1e-9)
    params.objectives = params.objectives + (PREFERENCE,)
    params.weight = np.vstack([params.weight, (w / sd)[None]])
    params.offset = np.concatenate([params.offset, [-mu / sd]])
    fold = np.random.default_rng(seed).permutation(len(diff)) % PREFERENCE_FOLDS
    margin = np.zeros(len(diff))
    for f in range(PREFERENCE_FOLDS):
        out = fold == f
        margin[out] = diff[out] @ fit_bradley_terry(diff[~out], weights[~out], l2) / sd
    params.stage1[PREFERENCE] = {"pairs": len(diff), "l2": l2,
                                 "cross_fitted_accuracy": float(np.mean(margin > 0)),
                                 "train_accuracy": float(np.mean(diff @ w > 0))}
    log.info("stage 1 %-12s pairs %5d l2 %g cross-fitted accuracy %.3f (in sample %.3f)", PREFERENCE, len(diff),
             l2, params.stage1[PREFERENCE]["cross_fitted_accuracy"], params.stage1[PREFERENCE]["train_accuracy"])
    return margin


MEASURED_SOURCE = {VERBOSITY: "log_words", LIKELIHOOD: "mean_logprob", QUALITY: "trunk"}  # as head_reward reads


def _measured_raw(name: str, table: FeatureTable) -> np.ndarray:
    if name == VERBOSITY:
        return np.log1p(table.words.astype(np.float64))
    if name == LIKELIHOOD:
        return table.logprob.astype(np.float64)
    if name == QUALITY:
        return table.quality.astype(np.float64)
    raise ValueError(f"unknown measured objective {name!r}")


def rewards(params: HeadParams, table: FeatureTable) -> np.ndarray:
    """Rewards (n, k) float64 as the head computes them; NaN likelihood where it was not measured."""
    out = table.response_states @ params.weight.T + params.offset
    for name, stats in params.measured.items():
        out[:, params.objectives.index(name)] = (_measured_raw(name, table) - stats["mean"]) / stats["std"]
    return out


def set_transform(params: HeadParams, reference: np.ndarray, verbosity_in_score: bool,
                  pair_rewards: tuple[np.ndarray, np.ndarray] | None = None, within_pairs: bool = False,
                  keep: tuple[str, ...] = ()) -> dict:
    """Debias every objective against verbosity on reference rewards (n, k); returns Spearman before/after.

    With pair_rewards (chosen (m, k), rejected (m, k)), the likelihood is debiased on within-pair differences
    instead: across prompts, longer answers have a lower mean log-prob (the kind of prompt sets both), so
    row-level debiasing added about 0.13 verbosity to the likelihood, a length preference inside every pair.
    With `within_pairs`, every objective is: a pairwise judgement compares two answers to one prompt, so what must
    not follow length is the difference between them (ArmoRM's decorrelation, taken on pair differences).
    Objectives in `keep` are not debiased (the trunk's quality, trained with its own length term).
    """
    transform = _row_debias(params, reference)
    pair_diff = _debias_likelihood(params, transform, reference, pair_rewards)
    if within_pairs and pair_rewards is not None and VERBOSITY in params.objectives:
        v = params.objectives.index(VERBOSITY)
        d = pair_rewards[0] - pair_rewards[1]
        for i, name in enumerate(params.objectives):
            ok = np.isfinite(d[:, i])
            if i != v and name != LIKELIHOOD and ok.sum() >= 20:  # the likelihood is handled above
                transform[v, i] = -debias_lambda(d[ok, i], d[ok, v])
    for name in keep:
        if name in params.objectives and VERBOSITY in params.objectives:
            transform[params.objectives.index(VERBOSITY), params.objectives.index(name)] = 0.0
    if VERBOSITY in params.objectives and not verbosity_in_score:
        # Verbosity stays visible as an objective but cannot buy score: its column of T is zero.
        transform[:, params.objectives.index(VERBOSITY)] = 0.0
    params.transform = transform
    if VERBOSITY not in params.objectives:
        return {}
    return _debias_report(params, reference, pair_rewards if within_pairs else None, pair_diff)


CANDIDATES_DEBIAS = "generator candidates, within prompts"  # the debias report's `on` for debias_within_prompts


def debias_within_prompts(params: HeadParams, reference: np.ndarray, groups: list[str],
                          keep: tuple[str, ...] = ()) -> dict:
    """Refit every objective's lambda in params.transform on reference rewards (n, k) centred within each prompt
    (`groups`, one key per row): each objective then ranks answers to one prompt without following their length,
    whatever length does between prompts; those in `keep` keep their lambda. Returns each objective's
    within-prompt Spearman with verbosity before and after, and its lambda."""
    v = params.objectives.index(VERBOSITY)
    keys = np.array(groups)
    centred = np.array(reference, np.float64)
    for key in set(groups):
        rows = keys == key
        centred[rows] -= centred[rows].mean(0)
    report = {}
    for i, name in enumerate(params.objectives):
        ok = np.isfinite(centred[:, i])
        if i == v or ok.sum() < 20:
            continue
        if name not in keep:
            params.transform[v, i] = -debias_lambda(centred[ok, i], centred[ok, v])
        after = centred[ok, i] + params.transform[v, i] * centred[ok, v]
        report[name] = {"on": CANDIDATES_DEBIAS,
                        "before": spearman(centred[ok, i], centred[ok, v]),
                        "after": spearman(after, centred[ok, v]), "lambda": float(-params.transform[v, i])}
    return report


def _row_debias(params: HeadParams, reference: np.ndarray) -> np.ndarray:
    """ArmoRM's transform on the reference rows. The trunk's quality exists on the training pairs only: it is
    debiased on its own rows, the others on every row where they are all measured."""
    partial = _idx(params, QUALITY)
    ok = np.all(np.isfinite(np.delete(reference, partial, axis=1)), axis=1)
    if ok.sum() < 20:  # the likelihood is measured on few rows: debias the others on the full set
        ok = np.all(np.isfinite(np.delete(reference, partial + _idx(params, LIKELIHOOD), axis=1)), axis=1)
    transform = debias_transform(np.nan_to_num(reference[ok]), params.objectives)
    if partial and VERBOSITY in params.objectives:
        j, v = partial[0], params.objectives.index(VERBOSITY)
        q_ok = np.isfinite(reference[:, j])
        transform[v, j] = -debias_lambda(reference[q_ok, j], reference[q_ok, v]) if q_ok.sum() >= 20 else 0.0
    return transform


def _debias_likelihood(params: HeadParams, transform: np.ndarray, reference: np.ndarray,
                       pair_rewards: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray | None:
    """Set the likelihood's debiasing in `transform` (on pair differences when enough pairs measured it, else on
    its rows); returns those pair differences (m, k), or None."""
    if LIKELIHOOD not in params.objectives or VERBOSITY not in params.objectives:
        return None
    j, v = params.objectives.index(LIKELIHOOD), params.objectives.index(VERBOSITY)
    pair_diff = None
    if pair_rewards is not None:
        d = pair_rewards[0] - pair_rewards[1]
        pair_diff = d[np.isfinite(d[:, j])] if np.isfinite(d[:, j]).sum() >= 20 else None
    lik_ok = np.isfinite(reference[:, j])
    transform[v, j] = 0.0
    if pair_diff is not None:
        transform[v, j] = -debias_lambda(pair_diff[:, j], pair_diff[:, v])
    elif lik_ok.sum() >= 20:
        transform[v, j] = -debias_lambda(reference[lik_ok, j], reference[lik_ok, v])
    return pair_diff


def _debias_report(params: HeadParams, reference: np.ndarray, within: tuple[np.ndarray, np.ndarray] | None,
                   pair_diff: np.ndarray | None) -> dict:
    """Each objective's Spearman with verbosity before and after params.transform (and within pairs, when the
    pairs were debiased: `within`), and its lambda."""
    transform, report = params.transform, {}
    v = params.objectives.index(VERBOSITY)
    after = np.nan_to_num(reference) @ transform
    for i, name in enumerate(params.objectives):
        if i == v:
            continue
        rows = np.isfinite(reference[:, i])
        report[name] = {"before": spearman(reference[rows, i], reference[rows, v]),
                        "after": spearman(after[rows, i], reference[rows, v]), "lambda": float(-transform[v, i])}
        if within is not None and name != LIKELIHOOD:
            d = within[0] - within[1]
            ok = np.isfinite(d[:, i])
            report[name]["within_pairs"] = {"before": spearman(d[ok, i], d[ok, v]),
                                            "after": spearman((np.nan_to_num(d) @ transform)[ok, i], d[ok, v])}
    if pair_diff is not None:
        j = params.objectives.index(LIKELIHOOD)
        after_pairs = np.nan_to_num(pair_diff) @ transform
        report[LIKELIHOOD].update(on="pair differences", before=spearman(pair_diff[:, j], pair_diff[:, v]),
                                  after=spearman(after_pairs[:, j], pair_diff[:, v]))
    return report


def _idx(params: HeadParams, name: str) -> list[int]:
    return [params.objectives.index(name)] if name in params.objectives else []


def pair_reward_diff(params: HeadParams, chosen: FeatureTable, rejected: FeatureTable,
                     preference_margin: np.ndarray | None = None) -> np.ndarray:
    """(r_chosen - r_rejected) @ T (n, k), with unmeasured likelihood differences set to 0 (no evidence);
    `preference_margin` (n,), when given, replaces the preference head's own differences (cross-fitted ones)."""
    diff = rewards(params, chosen) - rewards(params, rejected)
    if preference_margin is not None:
        diff[:, params.objectives.index(PREFERENCE)] = preference_margin
    return np.nan_to_num(diff, nan=0.0) @ params.transform


def scores(params: HeadParams, gating: np.ndarray, table: FeatureTable) -> np.ndarray:
    """Gated scores (n,) from gating (n, k) and features."""
    return np.sum(gating * (np.nan_to_num(rewards(params, table)) @ params.transform), axis=1)
