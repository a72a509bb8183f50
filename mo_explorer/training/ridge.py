"""Stage 1 of the ArmoRM recipe and its verbosity debiasing, numpy only.

One ridge regression per objective on the rows where it is labelled, alpha chosen on a validation split; then,
per objective, the lambda that makes its Spearman correlation with verbosity about 0 (ArmoRM's debiasing),
which gives the reward transform matrix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata, spearmanr

log = logging.getLogger(__name__)

ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))


@dataclass(frozen=True)
class RidgeFit:
    """A fitted linear map on raw features: prediction = x @ weight + intercept."""

    weight: np.ndarray  # (D,) float64
    intercept: float
    alpha: float
    val_spearman: float  # on the held-out split, with the chosen alpha
    val_mse: float
    n_train: int
    n_val: int


def _solve_path(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]) -> list[np.ndarray]:
    """Ridge weights (D,) for each alpha on centred x, y via one SVD."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    return [vt.T @ (s / (s**2 + a) * uty) for a in alphas]


def fit_ridge(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...] = ALPHAS, val_fraction: float = 0.2,
              seed: int = 0) -> RidgeFit:
    """Ridge on standardised features x (n, D) -> y (n,); alpha by validation MSE, then refit on all rows."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(y)
    if n < 5:
        raise ValueError(f"need at least 5 labelled rows for a ridge fit, got {n}")
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    val, tr = perm[:n_val], perm[n_val:]
    y_mean = y[tr].mean()
    paths = _solve_path(z[tr] - z[tr].mean(0), y[tr] - y_mean, alphas)
    mses = [float(np.mean((z[val] @ w + y_mean - z[tr].mean(0) @ w - y[val]) ** 2)) for w in paths]
    best = int(np.argmin(mses))
    w_best = paths[best]
    pred_val = z[val] @ w_best
    rho = float(spearmanr(pred_val, y[val]).statistic) if np.std(pred_val) > 0 and np.std(y[val]) > 0 else 0.0
    w_all = _solve_path(z - z.mean(0), y - y.mean(), (alphas[best],))[0]
    weight = w_all / sd  # fold the standardisation into the weights: they apply to raw features
    intercept = float(y.mean() - x.mean(0) @ weight)
    return RidgeFit(weight, intercept, alphas[best], rho, mses[best], len(tr), len(val))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two (n,) arrays (0 when either is constant)."""
    ra, rb = rankdata(a), rankdata(b)
    if np.std(ra) == 0 or np.std(rb) == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def debias_lambda(reward: np.ndarray, verbosity: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The lambda in grid minimising |Spearman(reward - lambda * verbosity, verbosity)|."""
    if grid is None:
        scale = np.std(reward) / max(np.std(verbosity), 1e-12)
        grid = np.linspace(-3, 3, 601) * scale
    rhos = np.array([abs(spearman(reward - lam * verbosity, verbosity)) for lam in grid])
    return float(grid[int(np.argmin(rhos))])


def debias_transform(rewards: np.ndarray, objectives: tuple[str, ...], verbosity_name: str = "verbosity",
                     keep: tuple[str, ...] = ()) -> np.ndarray:
    """Transform T (k, k): identity, with T[v, i] = -lambda_i so (rewards @ T)[:, i] = r_i - lambda_i r_v.

    rewards (n, k) on a reference set. Objectives in `keep` (and verbosity itself) are not debiased.
    """
    k = len(objectives)
    transform = np.eye(k)
    if verbosity_name not in objectives:
        return transform
    v = objectives.index(verbosity_name)
    for i, name in enumerate(objectives):
        if i == v or name in keep:
            continue
        transform[v, i] = -debias_lambda(rewards[:, i], rewards[:, v])
    return transform


def fit_bradley_terry(diff: np.ndarray, weights: np.ndarray, l2: float, iterations: int = 30) -> np.ndarray:
    """Linear Bradley-Terry head on pair differences diff (n, D) = x_chosen - x_rejected: w (D,) maximising
    sum_i weights_i log sigmoid(diff_i @ w) - l2 * n_eff * |w * sd|^2 (the penalty on standardised features).

    Newton's method: D is a few hundred, so each step is one D x D solve. No intercept (a pair has no side).
    """
    x = np.asarray(diff, np.float64)
    sd = np.sqrt((x**2).mean(0)) + 1e-6  # scale of the differences (they are centred on 0 by symmetry)
    z = x / sd
    w_rows = np.asarray(weights, np.float64) / np.mean(weights)
    n, d = z.shape
    w = np.zeros(d)
    for _ in range(iterations):
        m = z @ w
        p = 1.0 / (1.0 + np.exp(np.clip(m, -30, 30)))  # sigmoid(-m): the gradient weight of each pair
        grad = z.T @ (w_rows * p) / n - 2 * l2 * w
        hess = (z * (w_rows * p * (1 - p))[:, None]).T @ z / n + 2 * l2 * np.eye(d)
        step = np.linalg.solve(hess, grad)
        w += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w / sd
