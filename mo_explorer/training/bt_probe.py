"""A Bradley-Terry linear probe on frozen features, with a length term fitted and removed: the trunk's baseline.

logit = w . (x_chosen - x_rejected) + beta * (log words chosen - log words rejected); the score is w . x (beta
dropped), so the probe, like the trunk, is asked for what decides pairs beyond length. L2 on w only, chosen by
prompt-grouped cross-validation of the weighted log-loss on the training pairs. numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from mo_explorer.training.metrics import grouped_folds

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # on the weighted mean loss


@dataclass(frozen=True)
class Probe:
    """score(x) = ((x - mean) / scale) . weight; beta is the length term it was fitted with."""

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    weight: np.ndarray  # (D,)
    beta: float
    l2: float

    def score(self, x: np.ndarray) -> np.ndarray:
        """Scores (n,) of features (n, D)."""
        return ((x - self.mean) / self.scale) @ self.weight


def _fit(diff: np.ndarray, dlen: np.ndarray, w: np.ndarray, l2: float, length_term: bool) -> np.ndarray:
    """Parameters (D + 1,) = (weight, beta) minimising the weighted BT loss + l2/2 |weight|^2."""
    w = w / w.sum()
    d = diff.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        beta = theta[d] if length_term else 0.0
        z = diff @ theta[:d] + beta * dlen
        p = 1.0 / (1.0 + np.exp(-z))  # sigmoid
        val = float(np.sum(w * np.logaddexp(0.0, -z)) + 0.5 * l2 * theta[:d] @ theta[:d])
        g = -(w * (1.0 - p))
        grad = np.concatenate([diff.T @ g + l2 * theta[:d], [g @ dlen if length_term else 0.0]])
        return val, grad

    return minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500}).x


def fit_probe(x_chosen: np.ndarray, x_rejected: np.ndarray, dlen: np.ndarray, weights: np.ndarray,
              groups: list[str], length_term: bool = True, seed: int = 0) -> Probe:
    """Fit on pairs: features (n, D) of each side, log-length differences (n,), weights (n,), prompt groups."""
    both = np.concatenate([x_chosen, x_rejected])
    mean, scale = both.mean(0), both.std(0) + 1e-6
    diff = (x_chosen - x_rejected) / scale
    folds = grouped_folds(groups, 3, seed)
    best, best_loss = L2_GRID[0], np.inf
    for l2 in L2_GRID:
        total = 0.0
        for k in range(3):
            tr, te = folds != k, folds == k
            theta = _fit(diff[tr], dlen[tr], weights[tr], l2, length_term)
            z = diff[te] @ theta[:-1] + (theta[-1] if length_term else 0.0) * dlen[te]
            total += float(np.sum(weights[te] * np.logaddexp(0.0, -z)))
        if total < best_loss:
            best, best_loss = l2, total
    theta = _fit(diff, dlen, weights, best, length_term)
    return Probe(mean, scale, theta[:-1], float(theta[-1]) if length_term else 0.0, best)
