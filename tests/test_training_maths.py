"""Training maths on small synthetic data: ridge, debiasing, gate, metrics, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mo_explorer.models.armo import ArmoHead, HeadConfig
from mo_explorer.models.gate_trainer import GateTrainConfig, gate_weights, train_gate
from mo_explorer.training import data as D
from mo_explorer.training import recipe
from mo_explorer.training.metrics import difficulty, evaluate_pairs, expected_calibration_error
from mo_explorer.training.ridge import debias_transform, fit_bradley_terry, fit_ridge, spearman


def test_ridge_recovers_known_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 10)) * rng.uniform(0.5, 3, size=10) + rng.normal(size=10)
    w = rng.normal(size=10)
    y = x @ w + 2.0 + rng.normal(scale=0.01, size=400)
    fit = fit_ridge(x, y)
    np.testing.assert_allclose(fit.weight, w, atol=0.02)
    assert abs(fit.intercept - 2.0) < 0.1
    assert fit.val_spearman > 0.99


def test_bradley_terry_recovers_the_direction_that_decides_pairs():
    rng = np.random.default_rng(3)
    scale = np.arange(1, 21, dtype=float)  # features on very different scales
    w = rng.normal(size=20)
    a, b = rng.normal(size=(3000, 20)) * scale, rng.normal(size=(3000, 20)) * scale
    a_wins = ((a - b) / scale) @ w + rng.logistic(size=3000) > 0
    diff = np.where(a_wins[:, None], a - b, b - a)  # chosen minus rejected
    fit = fit_bradley_terry(diff, np.ones(3000), l2=1e-4)
    assert np.corrcoef(fit * scale, w)[0, 1] > 0.99
    # a flipped label set gives the opposite direction: the head follows the labels, not the features
    assert np.corrcoef(fit_bradley_terry(-diff, np.ones(3000), l2=1e-4) * scale, w)[0, 1] < -0.99


def test_preference_head_margins_are_cross_fitted():
    """The gate trains on the preference head's margins; on pure noise they must look like chance, not like the
    head's in-sample fit (which memorises noise)."""
    rng = np.random.default_rng(4)
    n, d = 300, 120

    def table(x):
        return recipe.FeatureTable(np.zeros((len(x), 2)), x, np.full(len(x), np.nan), np.ones(len(x)))

    chosen, rejected = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    params = recipe.HeadParams(("overall",), np.zeros((1, d)), np.zeros(1), {}, np.eye(1))
    margin = recipe.add_preference_head(params, table(np.vstack([chosen, rejected])), table(chosen),
                                        table(rejected), np.ones(n), l2=1e-3)
    assert params.objectives == ("overall", recipe.PREFERENCE) and params.weight.shape == (2, d)
    assert params.stage1[recipe.PREFERENCE]["train_accuracy"] > 0.75
    assert abs(np.mean(margin > 0) - 0.5) < 0.1


def test_debiasing_zeroes_spearman_with_verbosity():
    rng = np.random.default_rng(1)
    verbosity = rng.normal(size=500)
    quality = rng.normal(size=500)
    rewards = np.stack([quality + 0.8 * verbosity, verbosity], axis=1)
    assert spearman(rewards[:, 0], verbosity) > 0.4
    t = debias_transform(rewards, ("helpfulness", "verbosity"))
    debiased = rewards @ t
    assert abs(spearman(debiased[:, 0], verbosity)) < 0.02
    assert t[1, 1] == 1.0 and t[0, 0] == 1.0 and t[1, 0] < 0


def test_likelihood_is_debiased_within_pairs():
    # Across prompts, long answers have a low likelihood (the kind of prompt sets both); within a pair, the longer
    # answer is a little more likely. Row-level debiasing would add verbosity to the likelihood; pair-level
    # debiasing removes the within-pair length effect instead.
    from mo_explorer.training.recipe import HeadParams, set_transform

    rng = np.random.default_rng(4)
    m = 400
    prompt_kind = rng.normal(size=m)
    v_c, v_r = prompt_kind + rng.normal(scale=0.3, size=m), prompt_kind + rng.normal(scale=0.3, size=m)
    quality = rng.normal(scale=0.3, size=(m, 2))
    lik_c = -2 * prompt_kind + 0.5 * v_c + quality[:, 0]
    lik_r = -2 * prompt_kind + 0.5 * v_r + quality[:, 1]
    chosen, rejected = np.stack([v_c, lik_c], 1), np.stack([v_r, lik_r], 1)
    objectives = ("verbosity", "likelihood")
    params = HeadParams(objectives, np.zeros((2, 1)), np.zeros(2), {}, np.eye(2))
    set_transform(params, np.vstack([chosen, rejected]), verbosity_in_score=False)
    assert params.transform[0, 1] > 0  # by rows: verbosity is added to the likelihood
    report = set_transform(params, np.vstack([chosen, rejected]), False, (chosen, rejected))
    assert params.transform[0, 1] < 0  # within pairs: the longer answer's edge is taken away
    d = (chosen - rejected) @ params.transform
    assert abs(spearman(d[:, 1], v_c - v_r)) < 0.05 < spearman(lik_c - lik_r, v_c - v_r)
    assert report["likelihood"]["on"] == "pair differences" and abs(report["likelihood"]["after"]) < 0.05


def test_gate_learns_known_preference():
    # Two prompt kinds: for kind A objective 0 decides the preference, for kind B objective 1 does.
    rng = np.random.default_rng(2)
    n = 600
    kind = rng.integers(0, 2, size=n)
    prompts = np.stack([kind * 2.0 - 1, rng.normal(size=n) * 0.1, rng.normal(size=n) * 0.1], axis=1)
    diff = rng.normal(size=(n, 2))
    diff[kind == 0, 0] = np.abs(diff[kind == 0, 0]) * 3  # objective 0 agrees with the label on kind A
    diff[kind == 1, 1] = np.abs(diff[kind == 1, 1]) * 3
    gate, log = train_gate(prompts, diff, GateTrainConfig(steps=300, hidden=16, n_hidden=1, entropy_weight=0.0,
                                                          temperature=1.0))
    g = gate_weights(gate, np.array([[-1.0, 0, 0], [1.0, 0, 0]]))
    assert g[0, 0] > g[0, 1] and g[1, 1] > g[1, 0]
    assert log["train_accuracy"] > 0.75


def _two_kinds(seed: int = 2, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Prompts (n, 3) of two kinds and reward differences (n, 2): objective 0 decides kind A's pairs, 1 kind B's."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 2, size=n)
    prompts = np.stack([kind * 2.0 - 1, rng.normal(size=n) * 0.1, rng.normal(size=n) * 0.1], axis=1)
    diff = rng.normal(size=(n, 2))
    diff[kind == 0, 0] = np.abs(diff[kind == 0, 0]) * 3
    diff[kind == 1, 1] = np.abs(diff[kind == 1, 1]) * 3
    return prompts, diff


def test_gate_ensemble_is_the_mean_of_its_seeds(tmp_path):
    # Same data as above; three gates with seeds 4, 5, 6 averaged, saved in a head and read back.
    prompts, diff = _two_kinds()
    cfg = GateTrainConfig(steps=200, hidden=16, n_hidden=1, entropy_weight=0.0, temperature=1.0, seed=4, members=3)
    gate, log = train_gate(prompts, diff, cfg)
    probe = np.array([[-1.0, 0, 0], [1.0, 0, 0], [0.3, 0.5, -0.2]])
    members = [gate_weights(m, probe) for m in gate.members]
    assert len(members) == 3 and log["members"] == 3
    assert not np.allclose(members[0], members[1])  # different seeds, different gates
    np.testing.assert_allclose(gate_weights(gate, probe), np.mean(members, axis=0), rtol=1e-6)
    single, _ = train_gate(prompts, diff, GateTrainConfig(**{**cfg.__dict__, "members": 1, "seed": 5}))
    np.testing.assert_allclose(gate_weights(single, probe), members[1], rtol=1e-6)  # member i has seed + i
    g = gate_weights(gate, probe)
    assert g[0, 0] > g[0, 1] and g[1, 1] > g[1, 0] and log["train_accuracy"] > 0.75
    config = HeadConfig(objectives=["a", "b"], hidden_size=4, gate_hidden=16, gate_layers=1, temperature=1.0,
                        gate_input_size=3, gate_members=3)
    head = ArmoHead(config)
    with torch.no_grad():
        head.gating.load_state_dict(gate.state_dict())
    head.save(tmp_path / "head")
    loaded = ArmoHead.load(tmp_path / "head")
    np.testing.assert_allclose(gate_weights(loaded.gating, probe), g, rtol=1e-6)


def test_a_gate_floor_keeps_its_share_on_every_prompt_and_is_saved_with_the_head(tmp_path):
    # Kind A prompts are decided by objective 0, kind B by objective 1; objective 0 has a floor of 0.5. Free, the
    # gate gives kind B most of its weight on objective 1; floored, objective 0 keeps at least half everywhere.
    prompts, diff = _two_kinds()
    cfg = GateTrainConfig(steps=300, hidden=16, n_hidden=1, entropy_weight=0.0, temperature=1.0, members=2)
    free, _ = train_gate(prompts, diff, cfg)
    floored, log = train_gate(prompts, diff, GateTrainConfig(**{**cfg.__dict__, "floor": (0.5, 0.0)}))
    probe = np.array([[-1.0, 0, 0], [1.0, 0, 0]])
    g_free, g = gate_weights(free, probe), gate_weights(floored, probe)
    assert g_free[1, 0] / g_free[1].sum() < 0.3  # kind B, free: objective 0 gets little
    shares = g / g.sum(1, keepdims=True)
    assert np.all(shares[:, 0] >= 0.5 - 1e-6) and shares[1, 1] > 0.35  # kind B: the rest goes to objective 1
    assert log["train_accuracy"] > 0.75
    config = HeadConfig(objectives=["a", "b"], hidden_size=4, gate_hidden=16, gate_layers=1, temperature=1.0,
                        gate_input_size=3, gate_members=2, gate_floor=[0.5, 0.0])
    head = ArmoHead(config)
    with torch.no_grad():
        head.gating.load_state_dict(floored.state_dict())
    head.save(tmp_path / "head")
    np.testing.assert_allclose(gate_weights(ArmoHead.load(tmp_path / "head").gating, probe), g, rtol=1e-6)


ROUTE_TEST_GATE = dict(steps=300, hidden=16, n_hidden=1, entropy_weight=0.0, temperature=1.0, dropout=0.0, lr=1e-2)


def _two_routed_kinds(seed: int):
    """400 pairs of two kinds of prompt (state -1 or +1 plus noise), noise margins on 3 objectives, and the route
    naming objective 0 for kind A and objective 2 for kind B -> (rng, kind, prompts, diff, targets)."""
    rng = np.random.default_rng(seed)
    n = 400
    kind = rng.integers(0, 2, size=n)
    prompts = np.stack([kind * 2.0 - 1, rng.normal(size=n) * 0.1], axis=1)
    diff = rng.normal(size=(n, 3))
    return rng, kind, prompts, diff, np.where(kind == 0, 0, 2)


def _route_shares(prompts, diff, cfg, targets) -> np.ndarray:
    """The trained gate's shares (2, 3) for a kind A and a kind B prompt."""
    gate, _ = train_gate(prompts, diff, cfg, targets=targets)
    g = gate_weights(gate, np.array([[-1.0, 0.0], [1.0, 0.0]]))
    return g / g.sum(1, keepdims=True)


def test_a_routed_gate_learns_the_kind_of_request_even_where_the_margins_say_nothing():
    # The pairs' margins are noise; only the targets say kind A calls for objective 0 and kind B for objective 2.
    from mo_explorer.training.stage2 import route_targets

    _, kind, prompts, diff, targets = _two_routed_kinds(5)
    targets[:20] = -1  # pairs of a subset with no route: no target, no loss
    cfg = GateTrainConfig(**ROUTE_TEST_GATE, route=True)
    g = _route_shares(prompts, diff, cfg, targets)
    assert g[0, 0] > 0.8 and g[1, 2] > 0.8, g
    with pytest.raises(ValueError, match="target"):
        train_gate(prompts, diff, cfg)
    objectives = ("helpfulness", "overall", "harmlessness", "compliance", "verbosity")
    subsets = ["rmb-helpfulness", "rmb-harmlessness", "ratings-compliance", "helpsteer2"]
    assert route_targets(subsets, objectives).tolist() == [1, 2, 3, -1]  # general requests: overall
    assert route_targets(subsets, (*objectives, "quality")).tolist() == [5, 2, 3, -1]  # with a trunk: quality


def test_a_route_hint_decides_where_the_margins_are_silent_and_yields_where_they_speak():
    # Kind A pairs are clearly decided by objective 1, though the route names objective 0 for them; kind B pairs'
    # margins are noise and the route names objective 2. A hint (route_weight) follows the margins on kind A and the
    # route on kind B; the pure routed gate follows the route on both.
    rng, kind, prompts, diff, targets = _two_routed_kinds(6)
    diff[kind == 0, 1] = 4.0 + 0.5 * rng.normal(size=int((kind == 0).sum()))

    def shares(**extra) -> np.ndarray:
        return _route_shares(prompts, diff, GateTrainConfig(**ROUTE_TEST_GATE, **extra), targets)

    free, hinted, routed = shares(), shares(route_weight=0.1), shares(route=True)
    assert hinted[0].argmax() == 1 and hinted[1].argmax() == 2, hinted
    assert hinted[1, 2] > free[1, 2] + 0.1, (free, hinted)  # the hint, not the noise, lifts objective 2 on kind B
    assert routed[0, 0] > 0.8 and routed[1, 2] > 0.8, routed


def test_a_gate_floor_that_leaves_nothing_to_the_prompt_or_names_a_missing_objective_is_refused():
    import argparse
    import types

    from mo_explorer.errors import UserError
    from mo_explorer.models.armo import GatingNetwork
    from mo_explorer.training import stage2, train

    with pytest.raises(ValueError, match="floor"):
        GatingNetwork(3, 2, 8, 1, floor=[0.6, 0.4])
    parser = argparse.ArgumentParser()
    train.configure(parser)
    for bad in ('{"quality": 1.2}', '{"quality": -0.1}', '["quality"]', "quality"):
        args = parser.parse_args(["--ratings", "r", "--pairs", "p", "--gate-floor", bad])
        with pytest.raises(UserError, match="--gate-floor"):
            train.TrainConfig.from_args(args)
    cfg = types.SimpleNamespace(gate_floor={"quality": 0.5})
    with pytest.raises(UserError, match="quality"):
        stage2.gate_floor(cfg, ("helpfulness", "overall"))
    assert stage2.gate_floor(cfg, ("helpfulness", "quality")) == (0.0, 0.5)


def test_gate_ignores_a_feature_constant_in_training():
    # MiniLM's pooled states have dimensions that are 0 up to 1e-9; a prompt with float noise there must not
    # move the gate (dividing by that tiny std once folded scales of 1e5 into the first layer).
    rng = np.random.default_rng(3)
    n = 300
    kind = rng.integers(0, 2, size=n)
    prompts = np.stack([kind * 2.0 - 1, rng.normal(size=n) * 1e-9, np.zeros(n)], axis=1)
    diff = rng.normal(size=(n, 2))
    diff[kind == 0, 0] = np.abs(diff[kind == 0, 0]) * 3
    diff[kind == 1, 1] = np.abs(diff[kind == 1, 1]) * 3
    gate, _ = train_gate(prompts, diff, GateTrainConfig(steps=100, hidden=8, n_hidden=1, temperature=1.0))
    first = gate.layers[0].weight.detach().numpy()
    assert np.all(first[:, 1:] == 0) and np.all(np.isfinite(first))
    clean, noisy = gate_weights(gate, np.array([[1.0, 0, 0]])), gate_weights(gate, np.array([[1.0, 1e-6, 1e-6]]))
    np.testing.assert_allclose(clean, noisy, atol=1e-7)


def test_metrics_split_and_calibration():
    subsets = ["a", "a", "b", "b"]
    chosen, rejected = np.array([1.0, 0.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.0, 0.0])
    out = evaluate_pairs(subsets, chosen, rejected, styles=[(0, 2), (1, 1), (2, 0), (0, 0)],
                         lengths=(np.array([5, 5, 5, 5]), np.array([9, 1, 1, 1])))
    assert out["accuracy"] == 0.75 and out["subsets"]["a"]["accuracy"] == 0.5
    assert out["difficulty"]["hard"]["n"] == 1 and out["difficulty"]["normal"]["n"] == 2
    assert difficulty(0, 2) == "hard" and difficulty(2, 0) == "easy"
    assert out["longer_wins"]["a"] == 0.5
    # A model that is always right with huge margins is calibrated; one always wrong is not.
    assert expected_calibration_error(np.full(50, 20.0)) < 0.01
    assert expected_calibration_error(np.full(50, -20.0)) > 0.9


def test_stratified_sample_is_proportional_and_seeded():
    groups = ["x"] * 70 + ["y"] * 30
    a = D.stratified_sample(groups, 10, seed=0)
    assert len(a) == 10 and sum(groups[i] == "x" for i in a) == 7
    assert list(a) == list(D.stratified_sample(groups, 10, seed=0))
    assert list(a) != list(D.stratified_sample(groups, 10, seed=1))


def test_probe_accuracy_separates_a_separable_signal():
    from mo_explorer.training.ablate import probe_accuracy

    rng = np.random.default_rng(3)
    diff = rng.normal(size=(200, 5))
    diff[:, 0] = np.abs(diff[:, 0]) + 0.5  # chosen minus rejected is always positive on feature 0
    groups = [str(i // 2) for i in range(200)]
    assert probe_accuracy(diff, groups) > 0.95
    assert 0.3 < probe_accuracy(rng.normal(size=(200, 5)), groups) < 0.7


def test_a_gate_reading_the_prompt_reaches_what_no_fixed_weighting_can():
    """The ceiling command's measures mean what they say: when the deciding objective depends on the kind of
    prompt (objective 0 for one kind, objective 1 for the other, each pulling the wrong way on the other kind),
    the gate trained in-source gets nearly every pair, while fixed weights (softmax or any sign) stay at chance."""
    from mo_explorer.training.ablate import probe_accuracy
    from mo_explorer.training.ceiling import gate_cv_accuracy, single_objectives

    rng = np.random.default_rng(0)
    n = 240
    kind = np.arange(n) % 2
    states = np.eye(2)[kind] + 0.1 * rng.normal(size=(n, 2))
    size = np.abs(1 + 0.3 * rng.normal(size=n))
    diff = np.stack([np.where(kind == 0, size, -size), np.where(kind == 0, -size, size)], axis=1)
    mask, groups = np.ones_like(diff), [str(i // 2) for i in range(n)]
    cfg = GateTrainConfig(steps=150, entropy_weight=0.01)
    assert gate_cv_accuracy(states, diff, mask, groups, cfg) > 0.9
    assert gate_cv_accuracy(np.zeros((n, 1)), diff, mask, groups, cfg) < 0.65
    assert probe_accuracy(diff, groups) < 0.65
    assert single_objectives(diff, ("a", "b")) == {"a": 0.5, "b": 0.5}


def test_an_early_stopped_gate_is_its_best_state_on_held_out_prompts():
    """Prompts that tell nothing about which objective decides: a gate trained to the end memorises them and
    fits held-out prompts worse; with validation pairs the gate kept is the checked state with the lowest
    held-out loss, so it fits them at least as well."""
    import torch

    from mo_explorer.models.gate_trainer import _validation_loss

    rng = np.random.default_rng(4)
    n, d = 400, 64
    states, diff = rng.normal(size=(n, d)), rng.normal(size=(n, 3)) + np.array([0.3, 0.0, -0.3])
    train, val = slice(0, 300), slice(300, n)
    ones = np.ones(100)
    cfg = GateTrainConfig(steps=400, hidden=64, n_hidden=1, entropy_weight=0.0, temperature=1.0, dropout=0.0,
                          eval_every=20)
    held = (states[val], diff[val], ones, np.ones((100, 3)))
    stopped, log = train_gate(states[train], diff[train], cfg, val=held)
    full, full_log = train_gate(states[train], diff[train], cfg)
    raw = tuple(torch.tensor(a, dtype=torch.float32) for a in held)
    checked = [r["val_loss"] for r in log["history"] if "val_loss" in r]
    assert len(checked) == 20 and log["best_steps"][0] < cfg.steps
    assert _validation_loss(stopped, raw) == pytest.approx(min(checked), abs=1e-5)
    assert _validation_loss(stopped, raw) < _validation_loss(full, raw)
    assert full_log["train_accuracy"] > log["train_accuracy"]  # the full run memorised more


def test_debiasing_within_prompts_ignores_length_between_prompts_and_removes_it_within():
    # Between prompts, long answers score high (the kind of request sets both); within a prompt, objective 0 does
    # not follow length and objective 1 does. Pooled debiasing would subtract length from both.
    from mo_explorer.training.recipe import HeadParams, debias_within_prompts
    from mo_explorer.training.ridge import debias_transform

    rng = np.random.default_rng(0)
    prompt_level = np.repeat(rng.normal(0, 2, 40), 8)
    within = rng.normal(0, 0.5, 320)
    verbosity = prompt_level + within
    reference = np.stack([prompt_level + rng.normal(0, 0.5, 320), within + rng.normal(0, 0.2, 320), verbosity], 1)
    groups = [str(i // 8) for i in range(320)]
    objectives = ("free", "follows", "verbosity")
    assert -debias_transform(reference, objectives)[2, 0] > 0.5  # pooled: a large length correction
    params = HeadParams(objectives, np.zeros((3, 1)), np.zeros(3), {}, np.eye(3))
    report = debias_within_prompts(params, reference, groups)
    assert abs(report["free"]["lambda"]) < 0.15 and report["follows"]["lambda"] > 0.5
    assert abs(report["follows"]["after"]) < 0.05 and report["follows"]["before"] > 0.8


def test_an_objective_kept_out_of_debiasing_keeps_its_length_and_the_others_lose_theirs():
    # The trunk's quality is trained with its own length term: --no-debias-quality leaves it as it is.
    from mo_explorer.training.recipe import HeadParams, set_transform

    rng = np.random.default_rng(1)
    verbosity = rng.normal(size=400)
    reference = np.stack([verbosity + rng.normal(size=400), verbosity + rng.normal(size=400), verbosity], 1)
    params = HeadParams(("helpfulness", "quality", "verbosity"), np.zeros((3, 1)), np.zeros(3), {}, np.eye(3))
    report = set_transform(params, reference, verbosity_in_score=False, keep=("quality",))
    assert report["quality"]["lambda"] == 0.0 and report["quality"]["after"] == report["quality"]["before"] > 0.5
    assert report["helpfulness"]["lambda"] > 0.5 and abs(report["helpfulness"]["after"]) < 0.05
