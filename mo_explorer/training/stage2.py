"""Stage 2 of the recipe on prepared pairs: the gate's held-out split, its training, and what it learned.

The gate itself is trained in models.gate_trainer (torch); this module decides which pairs it trains on and which
it is checked on, and summarises its weights per training subset for the model card.
"""

from __future__ import annotations

import numpy as np

from mo_explorer.errors import UserError
from mo_explorer.training import recipe

HELD_OUT_SHARE = 0.1  # of the prompts (early stopping) or of the pairs (a check only)

GENERAL = "general"  # a request to be judged on the quality of the answer
# `--gate-route`: the objective each training subset's kind of request calls for. Everyday and task requests
# (RMB helpfulness, AlpacaEval, Prometheus / Auto-J, and the pairs built from them) are judged on quality;
# harmful ones (RMB harmlessness, XSTest's unsafe prompts) on harmlessness; XSTest's safe prompts that sound
# unsafe on compliance. A subset not named here (another data set) gives the gate no target.
ROUTES = {
    "rmb-helpfulness": GENERAL, "alpacaeval": GENERAL, "ratings-helpfulness": GENERAL, "ratings-overall": GENERAL,
    "refusal-benign": GENERAL, "neighbour": GENERAL, "padding": GENERAL, "truncation": GENERAL,
    "code-mutation": GENERAL, "fact-number": GENERAL,
    "rmb-harmlessness": "harmlessness", "ratings-harmlessness": "harmlessness", "refusal-harmful": "harmlessness",
    "ratings-compliance": "compliance",
}


def held_out(prompts: list[str], early_stop: bool, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Which pairs (n,) the gate does not train on, and whether they choose its step.

    With early stopping they are the pairs of 10% of the prompts: held-out pairs sharing a prompt with training
    pairs would reward a gate for memorising prompts, the failure early stopping is there to catch. With too few
    prompts to split, or without early stopping, 10% of the pairs at random only check the gate.
    """
    if early_stop:
        held_prompts = {k for k in sorted(set(prompts)) if rng.random() < HELD_OUT_SHARE}
        val = np.array([k in held_prompts for k in prompts])
        if val.any() and not val.all():
            return val, True
    return rng.random(len(prompts)) < HELD_OUT_SHARE, False


def measured_mask(objectives: tuple[str, ...], chosen: recipe.FeatureTable, rejected: recipe.FeatureTable,
                  transform: np.ndarray | None = None) -> np.ndarray:
    """(n, K) 1 where an objective was measured on both sides of a pair and can buy score, else 0.

    The likelihood on rows the generator did not score is masked out of that pair's gate, so the gate cannot park
    weight on a zero column to shrink margins it gets wrong. An objective whose column of the transform is zero
    (verbosity when it is shown, not rewarded) is masked on every pair: the trained gate then gives it exactly
    zero weight (models.gate_trainer), so the gate chart never shows weight that buys nothing.
    """
    mask = np.ones((len(chosen.words), len(objectives)))
    if recipe.LIKELIHOOD in objectives:
        mask[:, objectives.index(recipe.LIKELIHOOD)] = np.isfinite(chosen.logprob) & np.isfinite(rejected.logprob)
    if recipe.QUALITY in objectives:  # pairs the trunk did not score out of fold (contrastive ones) have none
        mask[:, objectives.index(recipe.QUALITY)] = np.isfinite(chosen.quality) & np.isfinite(rejected.quality)
    if transform is not None:
        mask[:, ~np.any(transform != 0, axis=0)] = 0.0
    return mask


def gate_floor(cfg, objectives: tuple[str, ...]) -> tuple[float, ...]:
    """The gate's floor (K,) in the order of `objectives`, from `--gate-floor` ({objective: share}); () for none.

    An objective the head does not have is an error: a floor silently dropped would train another recipe.
    """
    floor = dict(getattr(cfg, "gate_floor", None) or {})
    if not floor:
        return ()
    unknown = sorted(set(floor) - set(objectives))
    if unknown:
        raise UserError(f"--gate-floor names objectives this head does not have: {', '.join(unknown)} "
                        f"(it has {', '.join(objectives)})")
    return tuple(float(floor.get(name, 0.0)) for name in objectives)


def route_targets(subsets: list[str], objectives: tuple[str, ...]) -> np.ndarray:
    """Per pair, the index in `objectives` of the objective its subset's kind of request calls for (-1: none).

    General requests go to the trained trunk's `quality` when the head has it, else to `overall`.
    """
    general = recipe.QUALITY if recipe.QUALITY in objectives else "overall"
    out = []
    for s in subsets:
        name = ROUTES.get(s)
        name = general if name == GENERAL else name
        out.append(objectives.index(name) if name in objectives else -1)
    return np.array(out, dtype=np.int64)


def gate_config(cfg, objectives: tuple[str, ...] = ()):
    """The GateTrainConfig of a train config (its steps, seed, entropy bonus, members, hidden layers and floor)."""
    from mo_explorer.models.gate_trainer import GateTrainConfig

    return GateTrainConfig(steps=cfg.gate_steps, seed=cfg.seed, entropy_weight=cfg.gate_entropy,
                           members=cfg.gate_seeds, n_hidden=cfg.gate_layers, shrink=getattr(cfg, "gate_shrink", 0.0),
                           floor=gate_floor(cfg, objectives), route=bool(getattr(cfg, "gate_route", False)),
                           route_weight=float(getattr(cfg, "gate_route_weight", 0.0)))


def fit_gate(states: np.ndarray, diff: np.ndarray, weights: np.ndarray, mask: np.ndarray, subsets: list[str],
             prompts: list[str], objectives: tuple[str, ...], cfg) -> tuple[object, dict]:
    """Train the gate on pairs (prompt states (n, D), transformed reward differences (n, K), loss weights (n,),
    measured-objective mask (n, K), subset and prompt key per pair) -> (gate, report for the model card)."""
    from mo_explorer.models.gate_trainer import gate_weights, train_gate

    val, early = held_out(prompts, cfg.gate_early_stop, np.random.default_rng(cfg.seed))
    targets = route_targets(subsets, objectives)
    gate, log = train_gate(states[~val], diff[~val], gate_config(cfg, objectives), weights[~val], mask[~val],
                           (states[val], diff[val], weights[val], mask[val]) if early else None,
                           targets=targets[~val], val_targets=targets[val])
    g_val = gate_weights(gate, states[val])
    g_val = g_val * mask[val] / (g_val * mask[val]).sum(1, keepdims=True) * g_val.sum(1, keepdims=True)
    val_acc = float(np.mean(np.sum(g_val * diff[val], axis=1) > 0)) if val.any() else float("nan")
    g_all = gate_weights(gate, states)
    names = np.array(subsets)
    concentration = {}
    for s in sorted(set(subsets)):
        g = g_all[names == s]
        top = np.bincount(g.argmax(1), minlength=len(objectives))
        concentration[s] = {"mean_max": float((g.max(1) / g.sum(1)).mean()), "top": objectives[int(top.argmax())],
                            "mean": [float(x) for x in (g / g.sum(1, keepdims=True)).mean(0)]}
    return gate, {**log, "val_accuracy": val_acc, "concentration": concentration}
