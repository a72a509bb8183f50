"""Directions, scalarisations and the learned user direction: numpy only.

Reward matrices R are (n, k) float arrays over a round's candidates. `orient` makes every column
"higher is better" (costs such as generation time are negated), `normalise` rescales each column to
[0, 1] over the round's candidates (per-round normalisation), and a Direction (a unit vector, as in
Directional Preference Alignment) turns each row into one number to rank by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mo_explorer.schema import Direction

# Offset of the Tchebycheff reference point above the round's ideal point, so that a candidate sitting at
# the ideal on one objective still scores by its gaps on the others instead of tying at zero.
TCHEBYCHEFF_EPS = 1e-6

METHODS = ("linear", "tchebycheff")


def _as_matrix(R: np.ndarray) -> np.ndarray:
    """Validate and copy a reward matrix (n, k) to float64."""
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2:
        raise ValueError(f"reward matrix must be 2-D (n, k), got shape {R.shape}")
    if not np.all(np.isfinite(R)):
        raise ValueError("reward matrix contains NaN or infinite values")
    return R


def orient(R: np.ndarray, maximize: Sequence[bool] | None = None) -> np.ndarray:
    """Rewards (n, k) with minimised columns negated, so higher is better everywhere; float64 copy."""
    R = _as_matrix(R)
    if maximize is None:
        return R.copy()
    mask = np.asarray(maximize, dtype=bool)
    if mask.shape != (R.shape[1],):
        raise ValueError(f"maximize has {mask.size} entries but the reward matrix has {R.shape[1]} columns")
    return np.where(mask, R, -R)


def normalise(R: np.ndarray) -> np.ndarray:
    """Per-round normalisation: min-max each column of R (n, k) to [0, 1]; a constant column becomes 0.5."""
    R = _as_matrix(R)
    if R.shape[0] == 0:
        return R.copy()
    lo, hi = R.min(axis=0), R.max(axis=0)
    span = hi - lo
    flat = span <= 0.0
    out = (R - lo) / np.where(flat, 1.0, span)
    out[:, flat] = 0.5  # no spread in this round: every candidate is equally good on it
    return out


def scalarise(Rn: np.ndarray, weights: Sequence[float] | np.ndarray, method: str = "linear") -> np.ndarray:
    """One value per candidate (n,) from normalised, oriented rewards Rn (n, k); higher is better.

    linear: Rn @ v with v the unit direction (DPA). A negative component means "prefer less" of that
    objective: the direction points away from it, so lower values on it raise the score.

    tchebycheff: -max_i |v_i| * (z_i - Rn_i), z = the round's ideal point (column max) + a small epsilon.
    A linear score is maximised only by vertices of the convex hull, so a candidate in a concave dent of
    the front never wins under any direction. Tchebycheff measures the worst weighted shortfall from the
    ideal point instead; its level sets are corners pointing at z, and every Pareto-optimal point is the
    best for some weights, including points in concave parts of the front. A negative weight means
    "prefer less" of that objective: we flip that column (negate it) before taking the ideal point, so the
    objective is treated as one to minimise, and then use |v_i| as its importance.
    """
    Rn = _as_matrix(Rn)
    v = np.asarray(weights, dtype=np.float64)
    if v.shape != (Rn.shape[1],):
        raise ValueError(f"got {v.size} weights for {Rn.shape[1]} objectives")
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("weights must be finite and not all zero")
    v = v / norm
    if method == "linear":
        return Rn @ v
    if method != "tchebycheff":
        raise ValueError(f"unknown scalarisation {method!r}; use one of {METHODS}")
    if Rn.shape[0] == 0:
        return np.zeros(0)
    flipped = np.where(v < 0.0, -Rn, Rn)  # (n, k) "prefer less" columns become maximised ones
    z = flipped.max(axis=0) + TCHEBYCHEFF_EPS  # (k,) ideal point of this round
    return -np.max(np.abs(v) * (z - flipped), axis=1)


@dataclass(frozen=True)
class Ranking:
    """Candidates ranked by a direction: order (n,) best first, values (n,) and ranks (n,) 0-based."""

    order: np.ndarray
    values: np.ndarray
    ranks: np.ndarray

    @property
    def best(self) -> int:
        """Index of the top candidate."""
        if self.order.size == 0:
            raise ValueError("no candidates to rank")
        return int(self.order[0])


def rank_values(values: np.ndarray) -> Ranking:
    """Rank scalarised values (n,), higher first, ties broken by lower index."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(-values, kind="stable")  # stable: equal values keep index order
    ranks = np.empty_like(order)
    ranks[order] = np.arange(order.size)
    return Ranking(order=order, values=values, ranks=ranks)


def rank(R: np.ndarray, maximize: Sequence[bool] | None, direction: Direction,
         objectives: Sequence[str]) -> Ranking:
    """Rank candidates R (n, k) by a direction over a named subset of the k objectives."""
    objectives = list(objectives)
    R = _as_matrix(R)
    if R.shape[1] != len(objectives):
        raise ValueError(f"reward matrix has {R.shape[1]} columns but {len(objectives)} objective names")
    unknown = [name for name in direction.objectives if name not in objectives]
    if unknown:
        raise ValueError(f"direction names unknown objective(s) {unknown}; available: {objectives}")
    cols = [objectives.index(name) for name in direction.objectives]
    Rs = orient(R, maximize)[:, cols]  # (n, d)
    values = scalarise(normalise(Rs), direction.unit(), direction.method)
    return rank_values(values)


def angle_to_weights(theta_deg: float) -> np.ndarray:
    """Unit direction (2,) = (cos θ, sin θ) for an angle in degrees."""
    t = math.radians(float(theta_deg))
    return np.array([math.cos(t), math.sin(t)])


def weights_to_angle(w: Sequence[float] | np.ndarray) -> float:
    """Angle in degrees in [0, 360) of a 2-D direction (2,)."""
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (2,) or not np.any(w):
        raise ValueError("need a non-zero 2-D direction")
    deg = math.degrees(math.atan2(w[1], w[0])) % 360.0
    return 0.0 if deg >= 360.0 else deg  # -1e-17 % 360 rounds to 360.0


def winning_intervals(R2: np.ndarray) -> list[list[tuple[float, float]]]:
    """Per candidate of R2 (n, 2), the angle intervals (degrees) where it is the argmax of v(θ) · r.

    Over the full circle [0, 360); the intervals of all candidates partition it (for n >= 1). An interval
    that crosses 0° is reported as two pieces, (a, 360) and (0, b). Candidates that win nowhere (strictly
    inside the convex hull, on a hull edge between two others, or a duplicate of a lower index) get an empty
    list. Over the full circle a dominated candidate, or one in a concave dent of the front, can still win
    for directions that prefer less of some objective; within [0, 90] (more of both) neither ever wins.
    Exact: the winner can only change where two candidates tie, at angles perpendicular to r_i - r_j,
    so we evaluate the winner at the midpoint of each piece between consecutive tie angles.
    """
    R2 = _as_matrix(R2)
    n = R2.shape[0]
    if R2.shape[1] != 2:
        raise ValueError(f"winning_intervals needs two objectives, got {R2.shape[1]}")
    out: list[list[tuple[float, float]]] = [[] for _ in range(n)]
    if n == 0:
        return out
    i, j = np.triu_indices(n, k=1)
    diff = R2[i] - R2[j]  # (p, 2)
    diff = diff[np.any(diff != 0.0, axis=1)]  # identical points never swap order
    base = np.degrees(np.arctan2(diff[:, 1], diff[:, 0]))
    ties = np.concatenate([base + 90.0, base - 90.0]) % 360.0
    # Rounding merges tie angles that differ only by floating noise (many collinear pairs share one).
    cuts = np.unique(np.concatenate([[0.0, 360.0], np.round(ties, 9)]))
    cuts = cuts[(cuts >= 0.0) & (cuts <= 360.0)]
    mids = np.radians((cuts[:-1] + cuts[1:]) / 2.0)
    V = np.stack([np.cos(mids), np.sin(mids)], axis=1)  # (m, 2)
    winners = np.argmax(V @ R2.T, axis=1)  # (m,) first index wins exact ties
    start = 0
    for s in range(1, len(winners) + 1):
        if s == len(winners) or winners[s] != winners[start]:
            out[int(winners[start])].append((float(cuts[start]), float(cuts[s])))
            start = s
    return out


# Samples of the circle of directions before the winner's changes are refined by bisection (0.5° apart).
SECTOR_SAMPLES = 720
SECTOR_TOL_DEG = 1e-7  # bisection stops when a boundary is known this closely


def turned(weights: Sequence[float] | np.ndarray, ix: int, iy: int, theta_deg: float) -> np.ndarray:
    """Weights (k,) with the plotted pair (ix, iy) set to (cos θ, sin θ) and every other weight kept.

    The page's model of a direction: the arrow sets the plotted pair with length 1, and a weight off the
    plot (a "pinned" one) counts relative to that length. The browser turns weights with the same rule.
    """
    w = np.array(weights, dtype=np.float64)
    t = math.radians(float(theta_deg))
    w[ix], w[iy] = math.cos(t), math.sin(t)
    return w


def plane_weights(weights: Sequence[float] | np.ndarray, ix: int, iy: int) -> tuple[float, np.ndarray]:
    """(θ in degrees, pins (k,)) of weights (k,): the plotted pair's angle and the off-plot weights relative
    to the pair's length (zero at ix, iy). With no weight on the pair the arrow starts at 45°."""
    w = np.asarray(weights, dtype=np.float64)
    r = math.hypot(w[ix], w[iy])
    pins = w / (r if r > 1e-9 else max(float(np.linalg.norm(w)), 1.0))
    pins[[ix, iy]] = 0.0
    theta = weights_to_angle(w[[ix, iy]]) if r > 1e-9 else 45.0
    return theta, pins


def _winner(Rn: np.ndarray, weights: np.ndarray, ix: int, iy: int, theta: float, method: str) -> int:
    """Position of the first-ranked candidate with the plotted pair turned to θ (lowest position on ties)."""
    return int(np.argmax(scalarise(Rn, turned(weights, ix, iy, theta), method)))


def winning_sectors(Rn: np.ndarray, weights: Sequence[float] | np.ndarray, ix: int, iy: int,
                    method: str = "linear") -> list[tuple[int, float, float]]:
    """Where each candidate ranks first as the arrow turns: [(position, lo, hi)] in degrees, covering [0, 360).

    Rn (n, k) normalised oriented rewards; the plotted pair (ix, iy) is turned to every angle θ while the
    other (pinned) weights stay (`turned`), under either scalarisation, so this is the ranking the page shows
    at each arrow angle. The winner is sampled every 0.5° and each change is located by bisection to
    1e-7°; a midpoint naming a third candidate splits the search, so a sector is lost only if it is
    narrower than the sampling step and no midpoint lands in it. The one source of "where each candidate
    wins" for the ring, the comparison and the tests (assets/pareto/ranking.js is its parity-tested twin).
    """
    Rn = _as_matrix(Rn)
    if Rn.shape[0] == 0:
        return []
    w = np.asarray(weights, dtype=np.float64)
    step = 360.0 / SECTOR_SAMPLES

    def win(theta: float) -> int:
        return _winner(Rn, w, ix, iy, theta, method)

    def boundaries(a: float, wa: int, b: float, wb: int) -> list[tuple[float, int]]:
        """(angle, winner after it) for each change of winner between a (won by wa) and b (won by wb)."""
        while b - a > SECTOR_TOL_DEG:
            m = (a + b) / 2.0
            wm = win(m)
            if wm == wa:
                a = m
            elif wm == wb:
                b = m
            else:
                return boundaries(a, wa, m, wm) + boundaries(m, wm, b, wb)
        return [(b, wb)]

    angles = [s * step for s in range(SECTOR_SAMPLES)] + [360.0]
    winners = [win(a) for a in angles[:-1]] + [win(0.0)]
    cuts: list[tuple[float, int]] = [(0.0, winners[0])]
    for s in range(SECTOR_SAMPLES):
        if winners[s] != winners[s + 1]:
            cuts += boundaries(angles[s], winners[s], angles[s + 1], winners[s + 1])
    out = []
    for (lo, pos), (hi, _) in zip(cuts, cuts[1:] + [(360.0, -1)]):
        if hi > lo:
            out.append((pos, lo, hi))
    return out


def sector_at(sectors: list[tuple[int, float, float]], theta_deg: float) -> int:
    """The position whose sector holds the angle θ (degrees, any turn)."""
    t = float(theta_deg) % 360.0
    for pos, lo, hi in sectors:
        if lo <= t < hi:
            return pos
    return sectors[-1][0]


@dataclass(frozen=True)
class DirectionFit:
    """A user direction learned from side-by-side votes (Bradley-Terry without intercept)."""

    weights: np.ndarray  # (k,) unit vector
    raw: np.ndarray  # (k,) coefficients before normalising
    covariance: np.ndarray  # (k, k) Laplace approximation: inverse Hessian at the optimum
    angle_std_deg: float | None  # k == 2 only: std of the direction's angle (delta method)
    n_votes: int
    agreement: float  # fraction of votes whose sign the fitted direction explains


def _check_votes(diffs: np.ndarray, outcomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate vote features (m, k) and outcomes (m,) in {0, 1}."""
    D = _as_matrix(diffs)
    y = np.asarray(outcomes, dtype=np.float64)
    if y.shape != (D.shape[0],):
        raise ValueError(f"got {y.size} outcomes for {D.shape[0]} vote rows")
    if not np.all((y == 0.0) | (y == 1.0)):
        raise ValueError("outcomes must be 1.0 (first preferred) or 0.0 (second preferred)")
    return D, y


def agreement(diffs: np.ndarray, outcomes: np.ndarray, weights: Sequence[float] | np.ndarray) -> float:
    """Fraction of votes (m,) whose winner the direction (k,) scores higher; an exact tie counts half."""
    D, y = _check_votes(diffs, outcomes)
    if D.shape[0] == 0:
        raise ValueError("no votes to agree with")
    s = np.sign(D @ np.asarray(weights, dtype=np.float64))  # (m,) +1 when the first is scored higher
    target = np.where(y == 1.0, 1.0, -1.0)
    return float(np.mean(np.where(s == 0.0, 0.5, (s == target).astype(np.float64))))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function (m,) without overflow warnings for large |z|."""
    return np.exp(-np.logaddexp(0.0, -z))


def _bt_loss(D: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> float:
    """Penalised Bradley-Terry negative log-likelihood of votes D (m, k) under coefficients w (k,)."""
    z = D @ w  # (m,) logit that the first candidate is preferred
    # -log sigmoid(z) = logaddexp(0, -z), stable for large |z|
    return float(np.sum(np.where(y == 1.0, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))) + 0.5 * l2 * w @ w)


def _bt_grad(D: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> np.ndarray:
    """Gradient (k,) of the penalised loss."""
    p = _sigmoid(D @ w)  # (m,)
    return D.T @ (p - y) + l2 * w


def _bt_hessian(D: np.ndarray, w: np.ndarray, l2: float) -> np.ndarray:
    """Hessian (k, k) of the penalised loss; positive definite thanks to the L2 term."""
    p = _sigmoid(D @ w)  # (m,)
    return (D * (p * (1.0 - p))[:, None]).T @ D + l2 * np.eye(D.shape[1])


def fit_direction(diffs: np.ndarray, outcomes: np.ndarray, l2: float = 1.0,
                  max_iter: int = 100, tol: float = 1e-10) -> DirectionFit:
    """Fit P(first preferred) = sigmoid(w · d) to votes: diffs (m, k) = r_first - r_second, outcomes (m,).

    Newton's method on the L2-penalised negative log-likelihood; the penalty keeps the optimum finite
    when the votes are perfectly separable. No intercept: we learn a direction, not a bias towards a side.
    """
    D, y = _check_votes(diffs, outcomes)
    m, k = D.shape
    if m < 2:
        raise ValueError(f"need at least two decisive votes to learn a direction, got {m}")
    if l2 <= 0.0:
        raise ValueError("l2 must be positive (it keeps separable votes from diverging)")
    w = np.zeros(k)
    loss = _bt_loss(D, y, w, l2)
    for _ in range(max_iter):
        step = np.linalg.solve(_bt_hessian(D, w, l2), _bt_grad(D, y, w, l2))
        # Halve the Newton step while it does not decrease the (convex) loss: plain Newton can overshoot.
        t = 1.0
        while t > 1e-8:
            new_loss = _bt_loss(D, y, w - t * step, l2)
            if new_loss <= loss:
                break
            t /= 2.0
        w, loss = w - t * step, new_loss
        if float(np.max(np.abs(t * step))) < tol:
            break
    cov = np.linalg.inv(_bt_hessian(D, w, l2))
    norm = float(np.linalg.norm(w))
    if norm < 1e-12:
        raise ValueError("the votes cancel out and do not point to any direction")
    angle_std = projected_angle(w, cov, 0, 1)[1] if k == 2 else None
    unit = w / norm
    return DirectionFit(weights=unit, raw=w, covariance=cov, angle_std_deg=angle_std, n_votes=m,
                        agreement=agreement(D, y, unit))


def projected_angle(raw: np.ndarray, covariance: np.ndarray, jx: int, jy: int) -> tuple[float, float, float] | None:
    """A fitted direction raw (k,) with its covariance (k, k), seen in the plane of objectives jx, jy.

    Returns (angle in degrees [0, 360), its std in degrees, the share of the direction lying in that plane), or
    None when the direction is (nearly) perpendicular to the plane. The angle is atan2(w_y, w_x); its std comes
    from the delta method on the 2x2 block: dθ/dw = (-w_y, w_x) / |w|².
    """
    wx, wy = float(raw[jx]), float(raw[jy])
    r2 = wx * wx + wy * wy
    total = float(np.dot(raw, raw))
    if total <= 0.0 or r2 / total < 1e-6:
        return None
    g = np.array([-wy, wx]) / r2
    block = np.asarray(covariance, dtype=np.float64)[np.ix_([jx, jy], [jx, jy])]
    std = math.degrees(math.sqrt(max(float(g @ block @ g), 0.0)))
    return math.degrees(math.atan2(wy, wx)) % 360.0, std, math.sqrt(r2 / total)


def columns_to_fit(n_votes: int, k: int, pair: tuple[int, int] | None) -> list[int] | None:
    """Which of k weights n_votes decisive votes can support: all k when there are more votes than weights,
    else the plotted pair (when there are more votes than its two weights), else None ("not enough votes")."""
    if n_votes > k:
        return list(range(k))
    if pair is not None and pair[0] != pair[1] and n_votes > 2:
        return sorted(pair)
    return None


def leave_one_out(diffs: np.ndarray, outcomes: np.ndarray, l2: float = 1.0) -> tuple[float, int]:
    """(held-out votes predicted, votes): each vote predicted by a direction fitted to all the others.

    The honest count of how well a learned direction generalises: agreement on the votes it was fitted to
    is near-perfect with as many weights as votes. A held-out vote counts half when the others alone point
    nowhere (they cancel out) or the prediction is an exact tie.
    """
    D, y = _check_votes(diffs, outcomes)
    m = D.shape[0]
    hits = 0.0
    for i in range(m):
        keep = np.arange(m) != i
        try:
            w = fit_direction(D[keep], y[keep], l2=l2).raw
        except ValueError:  # fewer than two others, or they cancel out: no prediction
            hits += 0.5
            continue
        hits += agreement(D[i:i + 1], y[i:i + 1], w)
    return hits, m


def least_sure_pair(Rn: np.ndarray, weights: Sequence[float] | np.ndarray, method: str = "linear",
                    done: set[frozenset[int]] | None = None) -> tuple[int, int]:
    """The pair of positions (better first) whose scores under a direction are closest: the comparison the
    direction is least sure about, so a vote on it teaches the most. Pairs in `done` are skipped while any
    other pair is left. Rn (n, k) normalised oriented rewards, n >= 2."""
    values = scalarise(Rn, weights, method)  # (n,)
    n = values.shape[0]
    if n < 2:
        raise ValueError("a pair needs at least two candidates")
    i, j = np.triu_indices(n, k=1)
    gap = np.abs(values[i] - values[j])  # (p,)
    fresh = np.array([frozenset((int(a), int(b))) not in (done or set()) for a, b in zip(i, j)])
    if fresh.any():
        gap = np.where(fresh, gap, np.inf)
    p = int(np.argmin(gap))  # first on ties: the lowest positions
    a, b = int(i[p]), int(j[p])
    return (a, b) if values[a] >= values[b] else (b, a)
