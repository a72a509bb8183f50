"""Length control in training: the length-balanced metric, the length-balanced gate weights, the gate's prior."""

from __future__ import annotations

import numpy as np

from mo_explorer.models.gate_trainer import GateTrainConfig, gate_weights, train_gate
from mo_explorer.training import data as D
from mo_explorer.training.metrics import evaluate_pairs, length_balanced, pair_correct
from mo_explorer.training.train import length_balance


def _pair(subset: str, chosen_words: int, rejected_words: int) -> D.PairRow:
    return D.PairRow(id=f"{subset}/{chosen_words}/{rejected_words}", source=subset, subset=subset,
                     prompt=[{"role": "user", "content": "q"}], chosen="w " * chosen_words,
                     rejected="w " * rejected_words)


def test_longer_wins_scores_exactly_fifty_balanced_whatever_the_mix():
    rng = np.random.default_rng(0)
    len_c, len_r = rng.integers(1, 100, 500).astype(float), rng.integers(1, 100, 500).astype(float)
    len_c[:400] = len_r[:400] + 5  # 80% of pairs: the chosen answer is the longer one
    longer = pair_correct(len_c, len_r)
    assert np.mean(longer) > 0.75  # raw accuracy flatters it
    out = length_balanced(longer, len_c, len_r)
    assert out["longer"] == 1.0 and out["shorter"] == 0.0 and out["balanced"] == 0.5
    # A judge that ignores length and is right 70% of the time scores 70 on both halves.
    right = (rng.random(500) < 0.7).astype(float)
    lb = length_balanced(right, len_c, len_r)
    assert abs(lb["balanced"] - right.mean()) < 0.08 and lb["n_longer"] + lb["n_shorter"] <= 500


def test_a_half_with_no_pairs_leaves_the_balance_undefined():
    out = length_balanced(np.ones(3), np.array([5.0, 6, 7]), np.array([1.0, 2, 3]))
    assert out["longer"] == 1.0 and np.isnan(out["shorter"]) and np.isnan(out["balanced"])


def test_evaluate_pairs_reports_the_balance_per_subset_and_per_objective():
    len_c, len_r = np.array([10.0, 10, 2, 2]), np.array([2.0, 2, 10, 10])
    rewards_c = np.array([[1.0, 0], [1, 0], [1, 0], [1, 0]])  # objective 0 always prefers the chosen answer
    out = evaluate_pairs(["a", "a", "a", "a"], len_c, len_r, rewards_chosen=rewards_c,
                         rewards_rejected=np.zeros((4, 2)) + [[0, 1]], objectives=("good", "bad"),
                         lengths=(len_c, len_r))
    assert out["length_balanced"]["balanced"] == 0.5  # the score here is length itself
    assert out["length_balanced"]["objectives"]["good"]["balanced"] == 1.0
    assert out["length_balanced"]["objectives"]["bad"]["balanced"] == 0.0
    assert out["length_balanced"]["subsets"]["a"]["balanced"] == 0.5


def test_length_balance_gives_both_sides_of_each_group_the_same_weight():
    pairs = [_pair("a", 9, 1)] * 8 + [_pair("a", 1, 9)] * 2 + [_pair("a", 4, 4)] + [_pair("b", 9, 1)] * 3
    groups = [p.subset for p in pairs]
    w = length_balance(pairs, groups)
    assert np.isclose(w[:8].sum(), w[8:10].sum())  # group a: longer and shorter halves weigh the same
    assert np.isclose(w[:11].sum(), 11) and w[10] == 1.0  # its total is kept; the tie keeps its share
    assert np.all(w[11:] == 1.0)  # group b has no chosen-shorter pair: left as it is


def test_an_objective_masked_everywhere_gets_exactly_zero_weight():
    rng = np.random.default_rng(1)
    states, diff = rng.normal(size=(300, 4)), rng.normal(size=(300, 3))
    diff[:, 2] = np.abs(diff[:, 2]) * 5  # it would decide every pair if it could buy score
    mask = np.ones_like(diff)
    mask[:, 2] = 0.0
    gate, _ = train_gate(states, diff, GateTrainConfig(steps=60, hidden=8, n_hidden=1), None, mask)
    g = gate_weights(gate, rng.normal(size=(20, 4)))
    assert np.all(g[:, 2] == 0.0) and np.allclose(g.sum(1), g.sum(1)[0])


def test_shrinking_keeps_the_gate_near_one_weighting_unless_the_prompt_pays_for_it():
    rng = np.random.default_rng(3)
    n = 600
    states = rng.normal(size=(n, 6))  # prompts that say nothing about which objective decides
    diff = rng.normal(size=(n, 3))
    diff[:, 0] += 0.8  # objective 0 decides more pairs than the others, everywhere

    def spread(shrink: float) -> float:
        cfg = GateTrainConfig(steps=1000, hidden=32, n_hidden=1, temperature=1.0, entropy_weight=0.0, shrink=shrink,
                              dropout=0.0)
        gate, _ = train_gate(states, diff, cfg)
        g = gate_weights(gate, rng.normal(size=(200, 6)))
        return float(np.mean(np.abs(g - g.mean(0))))

    free, shrunk = spread(0.0), spread(2.0)
    assert shrunk < 0.3 * free, (free, shrunk)


def test_debiasing_within_pairs_leaves_no_length_in_a_pair_difference():
    from mo_explorer.training import recipe
    from mo_explorer.training.ridge import spearman

    rng = np.random.default_rng(4)
    m = 800
    v_c, v_r = rng.normal(size=m), rng.normal(size=m)
    quality = rng.normal(size=(m, 2))  # the part of the reward that is not length
    # The head's reward leaks length inside a pair (0.8 per unit of verbosity) but is uncorrelated across rows.
    r_c, r_r = quality[:, 0] + 0.8 * v_c, quality[:, 1] + 0.8 * v_r
    chosen, rejected = np.stack([r_c, v_c], 1), np.stack([r_r, v_r], 1)
    params = recipe.HeadParams(("helpfulness", "verbosity"), np.zeros((2, 1)), np.zeros(2), {}, np.eye(2))
    report = recipe.set_transform(params, rng.normal(size=(m, 2)), False, (chosen, rejected), within_pairs=True)
    d = (chosen - rejected) @ params.transform
    assert abs(spearman(d[:, 0], v_c - v_r)) < 0.05 < report["helpfulness"]["within_pairs"]["before"]
    assert params.transform[1, 0] < -0.5  # about -0.8: the leak, removed
