"""Directions, scalarisations, winning intervals and the learned user direction."""

import math
import subprocess
import sys

import numpy as np
import pytest

from mo_explorer import ranking
from mo_explorer.schema import Direction

NAMES = ["helpfulness", "correctness", "coherence", "complexity", "verbosity", "gen_seconds"]
MAXIMIZE = [True, True, True, True, True, False]


def brute_argmax(R2: np.ndarray, theta_deg: np.ndarray) -> np.ndarray:
    """Winner per angle (m,) by evaluating every candidate; lowest index wins ties."""
    t = np.radians(theta_deg)
    scores = np.cos(t)[:, None] * R2[:, 0] + np.sin(t)[:, None] * R2[:, 1]  # (m, n)
    return np.argmax(scores, axis=1)


def owner(intervals: list[list[tuple[float, float]]], theta: float) -> list[int]:
    return [i for i, ivs in enumerate(intervals) if any(a <= theta < b for a, b in ivs)]


def test_ranking_does_not_load_heavy_packages():
    code = ("import sys, mo_explorer.ranking; "
            "print(sorted(m for m in ('torch', 'gradio', 'pymoo', 'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_orient_negates_minimised_columns():
    R = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    out = ranking.orient(R, [True, False, True])
    np.testing.assert_array_equal(out, [[1.0, -2.0, 3.0], [4.0, -5.0, 6.0]])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(ranking.orient(R, None), R)
    with pytest.raises(ValueError, match="maximize"):
        ranking.orient(R, [True, False])
    with pytest.raises(ValueError):
        ranking.orient(np.array([[np.inf, 1.0]]))


def test_normalise_per_round_with_constant_column():
    R = np.array([[0.0, 5.0, 2.0], [10.0, 5.0, 4.0], [5.0, 5.0, 3.0]])
    Rn = ranking.normalise(R)
    np.testing.assert_allclose(Rn, [[0.0, 0.5, 0.0], [1.0, 0.5, 1.0], [0.5, 0.5, 0.5]])
    assert ranking.normalise(np.zeros((0, 3))).shape == (0, 3)


def test_linear_is_dot_with_unit_vector_and_negative_means_prefer_less():
    Rn = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(ranking.scalarise(Rn, [3.0, 4.0]), Rn @ np.array([0.6, 0.8]))
    values = ranking.scalarise(Rn, [0.0, -1.0])  # prefer less of objective 1
    assert int(np.argmax(values)) == 1
    with pytest.raises(ValueError, match="unknown scalarisation"):
        ranking.scalarise(Rn, [1.0, 0.0], "ucb")
    with pytest.raises(ValueError):
        ranking.scalarise(Rn, [0.0, 0.0])
    with pytest.raises(ValueError):
        ranking.scalarise(Rn, [1.0, 0.0, 0.0])


def test_tchebycheff_reaches_a_concave_dent_that_linear_never_picks():
    # (0.4, 0.4) is non-dominated but below the segment between the extremes: a concave dent.
    R = np.array([[1.0, 0.0], [0.0, 1.0], [0.4, 0.4]])
    thetas = np.arange(0.0, 90.0, 0.1) + 0.05
    linear_winners = {ranking.rank(R, None, Direction(("a", "b"), tuple(ranking.angle_to_weights(t))),
                                   ["a", "b"]).best for t in thetas}
    assert linear_winners == {0, 1}
    tch = Direction(("a", "b"), (1.0, 1.0), "tchebycheff")
    assert ranking.rank(R, None, tch, ["a", "b"]).best == 2
    # Tchebycheff still follows the direction: lean hard on objective a and the a-extreme wins
    assert ranking.rank(R, None, Direction(("a", "b"), (1.0, 0.1), "tchebycheff"), ["a", "b"]).best == 0


def test_tchebycheff_value_formula_and_negative_weights_flip_columns():
    rng = np.random.default_rng(0)
    Rn = rng.uniform(size=(10, 3))
    v = np.array([0.5, -0.3, 0.8])
    u = v / np.linalg.norm(v)
    z = Rn.max(axis=0) + ranking.TCHEBYCHEFF_EPS
    expected = -np.max(np.abs(u) * (z - Rn), axis=1)
    np.testing.assert_allclose(ranking.scalarise(Rn, np.abs(v), "tchebycheff"), expected)
    flipped = Rn * np.array([1.0, -1.0, 1.0])
    np.testing.assert_allclose(ranking.scalarise(Rn, v, "tchebycheff"),
                               ranking.scalarise(flipped, np.abs(v), "tchebycheff"))
    # prefer less of objective 0 only: the candidate lowest on it wins
    assert int(np.argmax(ranking.scalarise(Rn, [-1.0, 0.0, 0.0], "tchebycheff"))) == int(np.argmin(Rn[:, 0]))


@pytest.mark.parametrize("method", ["linear", "tchebycheff"])
def test_rank_64_candidates_with_named_subsets(method):
    rng = np.random.default_rng(1)
    R = rng.normal(size=(64, len(NAMES))).astype(np.float32)
    R[:, -1] = np.abs(R[:, -1]) * 3.0  # seconds
    d = Direction(("verbosity", "helpfulness", "gen_seconds"), (-0.2, 1.0, 0.5), method)
    r = ranking.rank(R, MAXIMIZE, d, NAMES)
    assert r.order.shape == r.values.shape == r.ranks.shape == (64,)
    np.testing.assert_array_equal(np.sort(r.order), np.arange(64))
    np.testing.assert_array_equal(r.ranks[r.order], np.arange(64))
    assert np.all(np.diff(r.values[r.order]) <= 0)
    # the same computation by hand: pick the named columns in the direction's order, orient, normalise
    cols = [NAMES.index(n) for n in d.objectives]
    sub = R[:, cols].astype(np.float64) * np.array([1.0, 1.0, -1.0])
    np.testing.assert_allclose(r.values, ranking.scalarise(ranking.normalise(sub), d.unit(), method))
    with pytest.raises(ValueError, match="unknown objective.*harmlessness"):
        ranking.rank(R, MAXIMIZE, Direction(("harmlessness",), (1.0,)), NAMES)
    with pytest.raises(ValueError):
        ranking.rank(R, MAXIMIZE, d, NAMES[:-1])


def test_rank_orients_cost_columns_and_breaks_ties_by_index():
    R = np.array([[1.0, 5.0], [1.0, 2.0], [1.0, 2.0], [1.0, 9.0]])  # seconds in column 1
    r = ranking.rank(R, [True, False], Direction(("gen_seconds",), (1.0,)), ["helpfulness", "gen_seconds"])
    np.testing.assert_array_equal(r.order, [1, 2, 0, 3])  # fastest first, tie 1 vs 2 by index
    np.testing.assert_array_equal(r.ranks, [2, 0, 1, 3])
    tie = ranking.rank(R, [True, False], Direction(("helpfulness",), (1.0,)), ["helpfulness", "gen_seconds"])
    np.testing.assert_array_equal(tie.order, [0, 1, 2, 3])
    empty = ranking.rank(np.zeros((0, 2)), None, Direction(("a",), (1.0,)), ["a", "b"])
    assert empty.order.size == 0
    with pytest.raises(ValueError):
        _ = empty.best


@pytest.mark.parametrize("theta", [0.0, 30.0, 90.0, 179.9, 180.0, 270.0, 359.5, -45.0, 720.0 + 10.0])
def test_angle_round_trip(theta):
    w = ranking.angle_to_weights(theta)
    assert np.linalg.norm(w) == pytest.approx(1.0)
    back = ranking.weights_to_angle(w)
    assert 0.0 <= back < 360.0
    assert back == pytest.approx(theta % 360.0, abs=1e-9)


def test_weights_to_angle_edges():
    assert ranking.weights_to_angle([1.0, -1e-300]) < 360.0
    assert ranking.weights_to_angle([0.0, 2.0]) == pytest.approx(90.0)
    assert ranking.weights_to_angle([-1.0, -1.0]) == pytest.approx(225.0)
    with pytest.raises(ValueError):
        ranking.weights_to_angle([0.0, 0.0])


def check_partition(intervals: list[list[tuple[float, float]]]) -> None:
    pieces = sorted(p for ivs in intervals for p in ivs)
    assert pieces[0][0] == 0.0 and pieces[-1][1] == 360.0
    for (_, b), (c, _) in zip(pieces, pieces[1:]):
        assert b == c  # no gap, no overlap
    assert all(a < b for a, b in pieces)


@pytest.mark.parametrize("seed", range(10))
def test_winning_intervals_match_brute_force_argmax(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 20))
    R2 = rng.uniform(size=(n, 2)) if seed % 2 else rng.integers(0, 4, size=(n, 2)).astype(float)
    R2 = np.vstack([R2, R2[:2]])  # duplicates of the first two
    intervals = ranking.winning_intervals(R2)
    assert len(intervals) == len(R2)
    check_partition(intervals)
    thetas = np.arange(3600) * 0.1 + 0.05  # 3600 angles, off the rational tie angles of integer data
    expected = brute_argmax(R2, thetas)
    got = [owner(intervals, t) for t in thetas]
    assert all(len(g) == 1 for g in got)
    np.testing.assert_array_equal([g[0] for g in got], expected)
    assert intervals[-1] == [] and intervals[-2] == []  # a duplicate loses to its lower index


def test_winning_intervals_concave_dent_and_small_cases():
    # 2: in a concave dent of the front, 3: on the hull edge, 4: strictly inside the hull
    R2 = np.array([[1.0, 0.0], [0.0, 1.0], [0.4, 0.4], [0.5, 0.5], [0.45, 0.46], [0.0, 0.0]])
    intervals = ranking.winning_intervals(R2)
    assert intervals[3] == [] and intervals[4] == []
    assert intervals[2] == []  # with the origin present the dent point is inside the hull
    # without the origin it is a hull vertex, but wins only directions that prefer less of both
    dent = ranking.winning_intervals(R2[:3])[2]
    assert dent and all(180.0 <= a and b <= 270.0 for a, b in dent)
    assert intervals[5] and all(180.0 <= a and b <= 270.0 for a, b in intervals[5])
    check_partition(intervals)
    # candidate 0 wins around 0°, wrapping: reported as two pieces
    assert intervals[0][0][0] == 0.0 and intervals[0][-1][1] == 360.0
    assert intervals[0][0][1] == pytest.approx(45.0)
    assert ranking.winning_intervals(np.zeros((0, 2))) == []
    assert ranking.winning_intervals(np.array([[0.3, 0.7]])) == [[(0.0, 360.0)]]
    assert ranking.winning_intervals(np.array([[0.3, 0.7], [0.3, 0.7]])) == [[(0.0, 360.0)], []]
    with pytest.raises(ValueError):
        ranking.winning_intervals(np.zeros((3, 3)))


def synthetic_votes(n: int, w_true: np.ndarray, seed: int, scale: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Bradley-Terry votes: P(first preferred) = sigmoid(scale * w_true . (r_first - r_second))."""
    rng = np.random.default_rng(seed)
    diffs = rng.uniform(size=(n, len(w_true))) - rng.uniform(size=(n, len(w_true)))
    p = 1.0 / (1.0 + np.exp(-scale * diffs @ w_true))
    return diffs, (rng.uniform(size=n) < p).astype(float)


def test_fit_direction_recovers_a_known_direction():
    w_true = ranking.angle_to_weights(30.0)
    diffs, y = synthetic_votes(400, w_true, seed=0)
    fit = ranking.fit_direction(diffs, y)
    assert float(fit.weights @ w_true) > 0.95
    assert np.linalg.norm(fit.weights) == pytest.approx(1.0)
    np.testing.assert_allclose(fit.weights, fit.raw / np.linalg.norm(fit.raw))
    assert fit.n_votes == 400
    assert fit.agreement == pytest.approx(ranking.agreement(diffs, y, fit.weights))
    assert 0.6 < fit.agreement <= 1.0
    np.testing.assert_allclose(fit.covariance, fit.covariance.T)
    assert np.all(np.linalg.eigvalsh(fit.covariance) > 0)
    # at the optimum the gradient of the penalised log-likelihood vanishes
    p = 1.0 / (1.0 + np.exp(-(diffs @ fit.raw)))
    np.testing.assert_allclose(diffs.T @ (p - y) + 1.0 * fit.raw, 0.0, atol=1e-8)
    hessian = (diffs * (p * (1 - p))[:, None]).T @ diffs + np.eye(2)  # Laplace: covariance = H^-1
    np.testing.assert_allclose(fit.covariance @ hessian, np.eye(2), atol=1e-8)


def test_fit_direction_uncertainty_shrinks_with_more_votes():
    w_true = ranking.angle_to_weights(60.0)
    few = ranking.fit_direction(*synthetic_votes(30, w_true, seed=1))
    many = ranking.fit_direction(*synthetic_votes(400, w_true, seed=2))
    assert few.angle_std_deg is not None and many.angle_std_deg is not None
    assert many.angle_std_deg < few.angle_std_deg
    assert np.trace(many.covariance) < np.trace(few.covariance)


def test_fit_direction_angle_std_matches_sampling():
    diffs, y = synthetic_votes(200, ranking.angle_to_weights(45.0), seed=3)
    fit = ranking.fit_direction(diffs, y)
    rng = np.random.default_rng(0)
    samples = rng.multivariate_normal(fit.raw, fit.covariance, size=20000)
    angles = np.degrees(np.arctan2(samples[:, 1], samples[:, 0]))
    assert fit.angle_std_deg == pytest.approx(float(np.std(angles)), rel=0.15)


def test_fit_direction_separable_votes_and_three_objectives():
    w_true = np.array([0.2, -0.5, 0.84])
    rng = np.random.default_rng(4)
    diffs = rng.normal(size=(50, 3))
    y = (diffs @ w_true > 0).astype(float)  # perfectly separable: only the L2 term keeps w finite
    fit = ranking.fit_direction(diffs, y, l2=0.1)
    assert np.all(np.isfinite(fit.raw))
    assert fit.angle_std_deg is None
    assert float(fit.weights @ w_true / np.linalg.norm(w_true)) > 0.9
    assert fit.agreement > 0.9


def test_fit_direction_input_errors():
    with pytest.raises(ValueError, match="need at least two decisive votes"):
        ranking.fit_direction(np.array([[0.1, 0.2]]), np.array([1.0]))
    with pytest.raises(ValueError, match="need at least two decisive votes"):
        ranking.fit_direction(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match="outcomes"):
        ranking.fit_direction(np.ones((3, 2)), np.array([1.0, 0.5, 0.0]))
    with pytest.raises(ValueError):
        ranking.fit_direction(np.ones((3, 2)), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="cancel"):
        ranking.fit_direction(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([1.0, 0.0]))


def test_agreement_counts_signs():
    diffs = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, -1.0]])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    # scores with w=(1,0): +1 (agree), 0 (tie: half), -1 with y=0 (agree), +1 (agree)
    assert ranking.agreement(diffs, y, [1.0, 0.0]) == pytest.approx(3.5 / 4)
    assert ranking.agreement(diffs, y, [-1.0, 0.0]) == pytest.approx(0.5 / 4)
    with pytest.raises(ValueError):
        ranking.agreement(np.zeros((0, 2)), np.zeros(0), [1.0, 0.0])


@pytest.mark.parametrize("seed", range(4))
def test_winning_sectors_match_the_exact_intervals_with_nothing_pinned(seed):
    R = ranking.normalise(np.random.default_rng(seed).normal(size=(10, 4)))
    sectors = ranking.winning_sectors(R, [1.0, 1.0, 0.0, 0.0], 0, 1, "linear")
    exact = ranking.winning_intervals(R[:, :2])
    assert sectors[0][1] == 0.0 and sectors[-1][2] == 360.0
    assert all(a[2] == b[1] for a, b in zip(sectors, sectors[1:]))  # a partition of the circle
    for pos, lo, hi in sectors:
        assert any(a - 1e-6 <= lo and hi <= b + 1e-6 for a, b in exact[pos]), (pos, lo, hi, exact[pos])


@pytest.mark.parametrize("method", ["linear", "tchebycheff"])
def test_winning_sectors_name_the_first_ranked_at_every_angle_with_pins(method):
    R = ranking.normalise(np.random.default_rng(3).normal(size=(12, 4)))
    w = np.array([0.0, 0.0, 0.7, -0.4])  # two pinned off-plot weights
    sectors = ranking.winning_sectors(R, w, 0, 1, method)
    for theta in np.linspace(0.05, 359.95, 997):
        first = ranking.rank_values(ranking.scalarise(R, ranking.turned(w, 0, 1, theta), method)).best
        assert ranking.sector_at(sectors, theta) == first, theta


def test_winning_sectors_one_winner_everywhere_and_ties():
    assert ranking.winning_sectors(np.array([[0.5, 0.5]]), [1.0, 0.0], 0, 1) == [(0, 0.0, 360.0)]
    twins = np.array([[0.2, 0.9], [0.2, 0.9], [0.9, 0.2]])  # a duplicate never wins: the lower index does
    assert {pos for pos, _, _ in ranking.winning_sectors(twins, [1.0, 1.0], 0, 1, "tchebycheff")} == {0, 2}


def test_plane_weights_and_turned_are_inverse():
    theta, pins = ranking.plane_weights([0.6, 0.8, 0.5, 0.0], 0, 1)
    assert theta == pytest.approx(math.degrees(math.atan2(0.8, 0.6)))
    np.testing.assert_allclose(pins, [0.0, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(ranking.turned(pins, 0, 1, theta), [0.6, 0.8, 0.5, 0.0])
    assert ranking.plane_weights([0.0, 0.0, 2.0], 0, 1)[0] == 45.0  # nothing on the plot: the arrow starts at 45°


def test_columns_to_fit_follow_the_votes():
    assert ranking.columns_to_fit(2, 5, (0, 1)) is None  # not enough votes yet
    assert ranking.columns_to_fit(3, 5, (1, 0)) == [0, 1]  # the plotted pair until more votes than weights
    assert ranking.columns_to_fit(6, 5, (0, 1)) == [0, 1, 2, 3, 4]
    assert ranking.columns_to_fit(4, 5, None) is None  # no plotted pair of objectives


def test_leave_one_out_predicts_each_vote_from_the_others():
    rng = np.random.default_rng(5)
    D = rng.normal(size=(12, 2))
    y = (D @ [0.8, 0.6] > 0).astype(float)
    hits, m = ranking.leave_one_out(D, y)
    assert m == 12 and hits >= 10  # a consistent voter is predicted on held-out votes
    noise = rng.integers(0, 2, size=12).astype(float)
    fitted = ranking.fit_direction(D, noise).agreement * 12
    held, _ = ranking.leave_one_out(D, noise)
    assert held <= fitted  # agreement on the fitted votes is optimistic; held-out is the honest count
    brute = sum(ranking.agreement(D[i:i + 1], y[i:i + 1], ranking.fit_direction(np.delete(D, i, 0),
                                                                            np.delete(y, i)).raw) for i in range(12))
    assert hits == pytest.approx(brute)


def test_least_sure_pair_is_the_closest_scores_better_first_and_skips_done_pairs():
    Rn = np.array([[0.0, 1.0], [0.5, 0.45], [1.0, 0.0], [0.2, 0.2]])
    a, b = ranking.least_sure_pair(Rn, [1.0, 1.0])
    assert {a, b} == {0, 2} and a == 0  # equal sums: the lowest positions first on ties
    c, d = ranking.least_sure_pair(Rn, [1.0, 1.0], done={frozenset((0, 2))})
    assert {c, d} == {0, 1} and c == 0  # 1.0 vs 0.95
    assert set(ranking.least_sure_pair(Rn[:2], [1.0, 0.0], done={frozenset((0, 1))})) == {0, 1}  # all done: reuse
