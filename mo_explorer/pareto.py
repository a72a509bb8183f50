"""Pareto fronts and hypervolume over a round's candidates: the only module that imports pymoo.

Rewards come in as (n, k) arrays where higher is better after `ranking.orient`; pymoo minimises, so
this module owns the sign flip: everything handed to pymoo is F = -R (or 1 - R for normalised rewards).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from mo_explorer.ranking import normalise, orient

# Reference point of the hypervolume in the normalised maximisation space: a little below the round's
# worst value on every objective, so the worst candidates on an objective still add volume.
DEFAULT_REFERENCE = -0.1


def _minimisation(R: np.ndarray, maximize: Sequence[bool] | None) -> np.ndarray:
    """pymoo's view F (n, k) of rewards R (n, k): oriented, then negated so lower is better."""
    return -orient(R, maximize)


def non_dominated(R: np.ndarray, maximize: Sequence[bool] | None = None) -> np.ndarray:
    """Sorted indices (m,) of the candidates of R (n, k) that no other candidate dominates.

    Uses every column given; select the objectives first. Duplicates do not dominate each other,
    so all copies of a non-dominated point are returned.
    """
    F = _minimisation(R, maximize)
    if F.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    return np.sort(np.asarray(front, dtype=np.int64))


def pareto_ranks(R: np.ndarray, maximize: Sequence[bool] | None = None) -> np.ndarray:
    """Front index (n,) int of each candidate of R (n, k): 0 = non-dominated, 1 = next front, ..."""
    F = _minimisation(R, maximize)
    if F.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, ranks = NonDominatedSorting().do(F, return_rank=True)
    return np.asarray(ranks, dtype=np.int64)


def hypervolume(R: np.ndarray, maximize: Sequence[bool] | None = None,
                reference: Sequence[float] | np.ndarray | None = None) -> float:
    """Hypervolume of the candidates R (n, k) after per-round normalisation; 0.0 for no candidates.

    Per-round normalisation: each (oriented) column is min-max scaled to [0, 1] over this round's
    candidates (a constant column becomes 0.5). The reference point is -0.1 on every objective in that
    maximisation space, i.e. 1.1 in the minimisation space F = 1 - Rn that pymoo sees. `reference`
    overrides it, given in the normalised maximisation space (k,); candidates that do not strictly
    beat it on every objective add nothing. Values are comparable between directions of one round,
    not between rounds, because each round is rescaled to its own range. At most 1.1 ** k.
    """
    Rn = normalise(orient(R, maximize))  # (n, k) in [0, 1]
    n, k = Rn.shape
    if n == 0 or k == 0:
        return 0.0
    ref = np.full(k, DEFAULT_REFERENCE) if reference is None else np.asarray(reference, dtype=np.float64)
    if ref.shape != (k,) or not np.all(np.isfinite(ref)):
        raise ValueError(f"reference must be {k} finite values")
    F = 1.0 - Rn  # (n, k) minimisation space: 0 is the round's best, 1 its worst
    ref_min = 1.0 - ref
    inside = np.all(F < ref_min, axis=1)  # points on or beyond the reference span no volume
    if not np.any(inside):
        return 0.0
    return float(HV(ref_point=ref_min)(F[inside]))


def front_line(R2: np.ndarray, maximize: Sequence[bool] | None = None) -> np.ndarray:
    """Indices (m,) of the non-dominated candidates of R2 (n, 2), sorted by the first objective.

    For drawing the front as a line: ascending in the first (oriented) objective, so descending in
    the second; copies of one point are ordered by index.
    """
    Ro = orient(R2, maximize)
    if Ro.shape[1] != 2:
        raise ValueError(f"front_line needs two objectives, got {Ro.shape[1]}")
    idx = non_dominated(Ro)
    return idx[np.lexsort((idx, Ro[idx, 0]))]


def session_hypervolumes(matrices: Sequence[np.ndarray], maximize: Sequence[bool] | None = None) -> list[float]:
    """Hypervolume of each round's candidates R_i (n_i, k), on one scale for the whole session, in [0, 1].

    Unlike `hypervolume` (each round min-max scaled to itself, so every round looks alike), every column is
    scaled by its range over all the session's candidates, so a round whose front reaches further on some
    objective gets more volume: a person can see whether a new prompt or new parameters gave a better front.
    Reference -0.1 on every objective; divided by 1.1 ** k, so 1.0 would be one candidate best on everything.
    """
    mats = [orient(np.asarray(R, dtype=np.float64), maximize) for R in matrices]
    if not mats or sum(len(R) for R in mats) == 0:
        return [0.0] * len(mats)
    k = mats[0].shape[1]
    every = np.concatenate([R for R in mats if len(R)])
    lo, span = every.min(axis=0), every.max(axis=0) - every.min(axis=0)
    ref_min = np.full(k, 1.0 - DEFAULT_REFERENCE)
    out = []
    for R in mats:
        if not len(R):
            out.append(0.0)
            continue
        Rn = np.where(span > 0, (R - lo) / np.where(span > 0, span, 1.0), 0.5)  # (n, k) on the session's scale
        F = 1.0 - Rn
        out.append(float(HV(ref_point=ref_min)(F)) / float(np.prod(ref_min)))
    return out
