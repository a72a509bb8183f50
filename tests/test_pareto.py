"""Pareto sets, fronts and hypervolume against brute-force oracles on random data with ties."""

import itertools

import numpy as np
import pytest

from mo_explorer import pareto


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a dominates b when maximising every column."""
    return bool(np.all(a >= b) and np.any(a > b))


def brute_non_dominated(R: np.ndarray) -> np.ndarray:
    n = len(R)
    return np.array([i for i in range(n) if not any(dominates(R[j], R[i]) for j in range(n))], dtype=np.int64)


def brute_ranks(R: np.ndarray) -> np.ndarray:
    ranks = np.full(len(R), -1)
    left = list(range(len(R)))
    front = 0
    while left:
        layer = [i for i in left if not any(dominates(R[j], R[i]) for j in left)]
        ranks[layer] = front
        left = [i for i in left if i not in layer]
        front += 1
    return ranks


def brute_normalise(R: np.ndarray) -> np.ndarray:
    out = np.empty_like(R, dtype=float)
    for c in range(R.shape[1]):
        lo, hi = R[:, c].min(), R[:, c].max()
        out[:, c] = 0.5 if hi == lo else (R[:, c] - lo) / (hi - lo)
    return out


def grid_volume(P: np.ndarray, ref: np.ndarray) -> float:
    """Exact volume of the union of boxes [p, ref] (minimisation) on the grid of all coordinates."""
    axes = [np.unique(np.concatenate([P[:, d], [ref[d]]])) for d in range(P.shape[1])]
    total = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        lo = np.array([axes[d][c] for d, c in enumerate(cell)])
        if np.any(np.all(P <= lo, axis=1)):  # some box covers this whole cell
            total += float(np.prod([axes[d][c + 1] - axes[d][c] for d, c in enumerate(cell)]))
    return total


def inclusion_exclusion_volume(P: np.ndarray, ref: np.ndarray) -> float:
    """Volume of the union of boxes [p, ref] by inclusion-exclusion over all subsets (small n only)."""
    total = 0.0
    for size in range(1, len(P) + 1):
        for subset in itertools.combinations(range(len(P)), size):
            corner = P[list(subset)].max(axis=0)  # intersection of the boxes
            total += (-1) ** (size + 1) * float(np.prod(np.clip(ref - corner, 0.0, None)))
    return total


def oracle_hypervolume(R: np.ndarray) -> float:
    F = 1.0 - brute_normalise(R)
    return grid_volume(F, np.full(R.shape[1], 1.1))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("k", [2, 3, 4])
def test_non_dominated_and_ranks_match_brute_force_with_ties(seed, k):
    rng = np.random.default_rng(seed)
    R = rng.integers(0, 4, size=(int(rng.integers(1, 25)), k)).astype(float)  # many ties and duplicates
    R[-1] = R[0]  # at least one exact duplicate
    np.testing.assert_array_equal(pareto.non_dominated(R), brute_non_dominated(R))
    np.testing.assert_array_equal(pareto.pareto_ranks(R), brute_ranks(R))


def test_duplicates_are_all_kept_and_dominated_points_dropped():
    R = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(pareto.non_dominated(R), [0, 1, 2])
    np.testing.assert_array_equal(pareto.pareto_ranks(R), [0, 0, 0, 2, 1])


def test_minimised_columns_are_oriented():
    # Column 1 is a cost (seconds): candidate 0 is fast and good, candidate 1 slow and equally good.
    R = np.array([[0.9, 1.0], [0.9, 5.0], [0.5, 0.5]])
    np.testing.assert_array_equal(pareto.non_dominated(R, [True, False]), [0, 2])
    np.testing.assert_array_equal(pareto.non_dominated(R), [1])  # maximising both, 1 dominates the others
    flipped = R * np.array([1.0, -1.0])
    np.testing.assert_array_equal(pareto.pareto_ranks(R, [True, False]), pareto.pareto_ranks(flipped))
    assert pareto.hypervolume(R, [True, False]) == pytest.approx(pareto.hypervolume(flipped))


def test_empty_and_single_candidate():
    assert pareto.non_dominated(np.zeros((0, 3))).size == 0
    assert pareto.pareto_ranks(np.zeros((0, 3))).size == 0
    assert pareto.hypervolume(np.zeros((0, 3))) == 0.0
    assert pareto.front_line(np.zeros((0, 2))).size == 0
    # one candidate: every column is constant -> 0.5, so its box spans 0.6 per objective
    assert pareto.hypervolume(np.array([[3.0, -1.0]])) == pytest.approx(0.36)
    np.testing.assert_array_equal(pareto.non_dominated(np.array([[1.0, 2.0]])), [0])


def test_hypervolume_hand_computed_2d():
    # normalised: (0,1), (1,0), (0.5,0.5); minimisation space with ref 1.1
    R = np.array([[0.0, 10.0], [10.0, 0.0], [5.0, 5.0]])
    # boxes A=(1,0): 0.1*1.1, B=(0,1): 1.1*0.1, C=(0.5,0.5): 0.6*0.6; A&C = B&C = 0.1*0.6, A&B = A&B&C = 0.1*0.1
    expected = 0.11 + 0.11 + 0.36 - 0.06 - 0.06 - 0.01 + 0.01
    assert pareto.hypervolume(R) == pytest.approx(expected)
    assert pareto.hypervolume(R) == pytest.approx(oracle_hypervolume(R))


@pytest.mark.parametrize("seed", range(15))
@pytest.mark.parametrize("k", [2, 3])
def test_hypervolume_matches_exact_grid_oracle(seed, k):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 14))
    R = rng.normal(size=(n, k))
    if seed % 3 == 0:
        R = np.round(R, 0)  # ties, duplicates and sometimes constant columns
    assert pareto.hypervolume(R) == pytest.approx(oracle_hypervolume(R), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_grid_oracle_agrees_with_inclusion_exclusion(seed):
    # guards the oracle itself against a bug that would make both sides agree wrongly
    rng = np.random.default_rng(seed)
    P = rng.uniform(size=(7, 3))
    ref = np.full(3, 1.1)
    assert grid_volume(P, ref) == pytest.approx(inclusion_exclusion_volume(P, ref))
    assert pareto.hypervolume(1.0 - P) > 0.0


def test_hypervolume_custom_reference_and_constant_column():
    R = np.array([[0.0, 1.0, 7.0], [1.0, 0.0, 7.0]])  # third column constant -> 0.5
    # reference at 0 in the normalised maximisation space: both candidates sit on it in one objective
    assert pareto.hypervolume(R, reference=[0.0, 0.0, 0.0]) == 0.0
    assert pareto.hypervolume(R) == pytest.approx(oracle_hypervolume(R))
    with pytest.raises(ValueError):
        pareto.hypervolume(R, reference=[0.0, 0.0])


def test_dominated_points_do_not_change_hypervolume():
    rng = np.random.default_rng(7)
    R = rng.uniform(size=(20, 3))
    R = np.vstack([R, R.min(axis=0) - 0.5])  # a dominated row that fixes the lower end of each column
    nd = pareto.non_dominated(R)
    assert 1 < len(nd) < len(R) - 1
    # the top of each column is reached by a non-dominated point, so keeping nd + the low row keeps the
    # per-round normalisation unchanged; the other dominated points lie inside the dominated volume
    keep = np.concatenate([nd, [len(R) - 1]])
    assert pareto.hypervolume(R[keep]) == pytest.approx(pareto.hypervolume(R))
    inner = [i for i in nd if i not in set(R.argmax(axis=0).tolist())]  # front points that set no range
    assert inner
    smaller = np.setdiff1d(np.arange(len(R)), [inner[0]])
    assert pareto.hypervolume(R[smaller]) < pareto.hypervolume(R)  # dropping a front point does change it


def test_front_line_sorted_by_first_objective():
    rng = np.random.default_rng(3)
    R = rng.integers(0, 6, size=(30, 2)).astype(float)
    line = pareto.front_line(R)
    assert set(line.tolist()) == set(brute_non_dominated(R).tolist())
    xs = R[line, 0]
    assert np.all(np.diff(xs) >= 0)
    assert np.all(np.diff(R[line, 1]) <= 0)  # along a 2-D front the second objective falls
    with pytest.raises(ValueError):
        pareto.front_line(np.zeros((3, 3)))


def test_front_line_respects_orientation():
    R = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # seconds in column 1: lower is better
    np.testing.assert_array_equal(pareto.front_line(R, [True, False]), [0, 1, 2])
    np.testing.assert_array_equal(pareto.front_line(R), [2])


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        pareto.non_dominated(np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        pareto.non_dominated(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError):
        pareto.pareto_ranks(np.ones((2, 2)), [True])


def test_session_hypervolumes_compare_rounds_on_one_scale():
    worse = np.array([[0.2, 0.1], [0.1, 0.2]])
    better = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.6]])
    hv_worse, hv_better, hv_empty = pareto.session_hypervolumes([worse, better, np.zeros((0, 2))])
    assert 0.0 < hv_worse < hv_better <= 1.0 and hv_empty == 0.0
    # on its own scale each round would look alike; on the session's the better front is bigger
    assert pareto.session_hypervolumes([np.array([[1.0, 1.0]]), np.array([[0.0, 0.0]])])[0] == pytest.approx(1.0)
    # costs count lower-is-better
    (a, b) = pareto.session_hypervolumes([np.array([[1.0]]), np.array([[2.0]])], maximize=[False])
    assert a > b
