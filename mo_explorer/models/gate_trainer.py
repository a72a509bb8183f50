"""Stage 2 of the ArmoRM recipe: train the gating network with the Bradley-Terry loss (torch part of training).

The regression heads and the transform are frozen; only the gate learns. Inputs are precomputed:
the prompt states of each pair and the transformed reward difference (r_chosen - r_rejected) @ T, so one epoch
over thousands of pairs is a few matrix products.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mo_explorer.models.armo import GateEnsemble, GatingNetwork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateTrainConfig:
    """Optimiser settings (ArmoRM: AdamW lr 1e-3, cosine schedule, dropout 0.2)."""

    hidden: int = 256  # units per hidden layer
    n_hidden: int = 2  # hidden layers before the softmax over objectives
    temperature: float = 10.0  # softmax temperature: ArmoRM's sharpening of the gate's logits
    steps: int = 600  # full optimisation steps (a few thousand pairs: more overfits the gate)
    lr: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.2
    batch_size: int = 512
    entropy_weight: float = 0.01  # bonus on the gate's entropy: guards against collapse onto one objective
    seed: int = 0
    members: int = 1  # gates averaged (seeds seed .. seed + members - 1): the mean moves less with noise
    eval_every: int = 25  # with validation pairs: steps between checks of the validation loss
    shrink: float = 0.0  # weight of KL(gate(prompt) || the batch's mean gate): one population weighting as prior
    floor: tuple[float, ...] = ()  # per objective, the share the gate always gives it (GatingNetwork's floor)
    route: bool = False  # trained to name the objective each pair's kind of request calls for (cross-entropy)
    route_weight: float = 0.0  # without `route`: Bradley-Terry + route_weight x that cross-entropy (a hint)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and std (D,) of features (n, D); std is inf for a feature constant in training.

    MiniLM's pooled states hold three dimensions that are 0 up to 1e-9: dividing by a tiny std folded scales of
    1e5 into the gate's first layer, so float noise in a new prompt's state moved the gate. A constant feature
    carries no information; an infinite std gives it exactly zero weight.
    """
    sd = x.std(0)
    return x.mean(0), np.where(sd > 1e-6 * max(float(sd.max()), 1e-12), sd, np.inf)


def train_gate(prompt_states: np.ndarray, reward_diff: np.ndarray, config: GateTrainConfig,
               weights: np.ndarray | None = None, mask: np.ndarray | None = None,
               val: tuple[np.ndarray, ...] | None = None, targets: np.ndarray | None = None,
               val_targets: np.ndarray | None = None) -> tuple[nn.Module, dict]:
    """Fit a gate on pairs: prompt_states (n, D), reward_diff (n, K) = (r_c - r_r) @ T; returns (gate, log).

    With config.members > 1 the gate is a GateEnsemble of that many gates trained with seeds seed, seed + 1, ...
    (the mean of their weights). The first layers absorb the feature standardisation, so the returned module
    reads raw states. `weights` (n,) reweights pairs (e.g. to balance sources); `mask` (n, K) is 0 where an
    objective was not measured on a pair: the gate's weight is renormalised over the measured ones for that pair.
    `val` (prompt_states, reward_diff, weights, mask) of pairs kept out of training: each gate is then the state,
    checked every `eval_every` steps, with the lowest weighted Bradley-Terry loss on them (early stopping).

    With config.route, `targets` (n,) names for each pair the objective its kind of request calls for (-1: none)
    and the gate learns to recognise the kind of request (cross-entropy on those names, the same pair weights)
    instead of fitting the pairs' margins; `val_targets` then choose the step.
    """
    threads = torch.get_num_threads()
    # The gate is tiny: one thread avoids OpenMP spinning against other processes on a shared CPU.
    torch.set_num_threads(1)
    try:
        mu, sd = standardiser(prompt_states)
        x = torch.tensor((prompt_states - mu) / sd, dtype=torch.float32)
        d = torch.tensor(reward_diff, dtype=torch.float32)
        w = torch.tensor(np.ones(len(d)) if weights is None else weights, dtype=torch.float32)
        m = torch.tensor(np.ones(d.shape) if mask is None else mask, dtype=torch.float32)
        held = None
        if val is not None:
            held = (torch.tensor((val[0] - mu) / sd, dtype=torch.float32),
                    *(torch.tensor(a, dtype=torch.float32) for a in val[1:]))
        target = None
        if config.route or config.route_weight > 0:
            if targets is None:
                raise ValueError("a routed gate needs each pair's target objective")
            target = torch.tensor(targets, dtype=torch.long)
            if held is not None:
                held = (*held, torch.tensor(val_targets, dtype=torch.long))
        members, histories, accuracies = [], [], []
        for i in range(max(1, config.members)):
            gate, history = _train_one(x, d, w, m, config, config.seed + i, held, target)
            with torch.no_grad():
                _exclude(gate, (m == 0).all(0))
                accuracies.append(float(((_masked(gate(x), m) * d).sum(1) > 0).float().mean()))
                _fold_standardiser(gate, mu, sd)
            members.append(gate)
            histories.append(history)
        gate = members[0] if len(members) == 1 else GateEnsemble(members)
        with torch.no_grad():
            x_raw = torch.tensor(prompt_states, dtype=torch.float32)
            train_acc = float(((_masked(gate(x_raw), m) * d).sum(1) > 0).float().mean())
    finally:
        torch.set_num_threads(threads)
    log.info("gate: %d pairs, %d member(s) x %d steps, train accuracy %.3f (members %s), final BT loss %.4f",
             len(d), len(members), config.steps, train_acc, " ".join(f"{a:.3f}" for a in accuracies),
             histories[0][-1]["loss"])
    out = {"train_accuracy": train_acc, "members": len(members), "member_train_accuracy": accuracies,
           "history": histories[0]}
    if held is not None:
        out["best_steps"] = [min(h, key=lambda r: r.get("val_loss", math.inf))["step"] for h in histories]
        log.info("gate: early stopped at steps %s of %d", out["best_steps"], config.steps)
    return gate, out


def _train_one(x: torch.Tensor, d: torch.Tensor, w: torch.Tensor, m: torch.Tensor, config: GateTrainConfig,
               seed: int, held: tuple[torch.Tensor, ...] | None = None, target: torch.Tensor | None = None
               ) -> tuple[GatingNetwork, list[dict]]:
    """One gate on standardised states x (n, D), trained with `seed`; returned in eval mode. With `held`
    (standardised states, diffs, weights, mask of validation pairs), the state with the lowest validation loss.
    With `target` (n,) it learns to name each pair's objective (routing) instead of fitting the margins."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n, k = d.shape
    gate = GatingNetwork(x.shape[1], k, config.hidden, config.n_hidden, config.temperature,
                         dropout=config.dropout, floor=list(config.floor) or None)
    opt = torch.optim.AdamW(gate.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / config.steps)))
    gate.train()
    history = []
    best = (math.inf, None)
    for step in range(config.steps):
        idx = torch.tensor(rng.choice(n, size=min(config.batch_size, n), replace=False))
        raw = gate(x[idx])
        g = _masked(raw, m[idx])  # (B, K)
        margin = (g * d[idx]).sum(1)  # score_chosen - score_rejected
        bt = (F.softplus(-margin) * w[idx]).sum() / w[idx].sum()  # -log sigmoid(margin): Bradley-Terry
        p = g / g.sum(1, keepdim=True)
        entropy = -(p * torch.log(p + 1e-9)).sum(1).mean()
        fit = bt
        if target is not None:
            ce = _route_loss(raw, target[idx], w[idx])
            fit = ce if config.route else bt + config.route_weight * ce
        loss = fit - config.entropy_weight * entropy
        if config.shrink > 0:  # departures from the population weighting must pay for themselves in the BT loss
            mean = p.mean(0, keepdim=True)
            loss = loss + config.shrink * (p * (torch.log(p + 1e-9) - torch.log(mean + 1e-9))).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if held is not None and ((step + 1) % config.eval_every == 0 or step == config.steps - 1):
            loss_val = _validation_loss(gate, held, config)
            history.append({"step": step + 1, "loss": fit.item(), "bt_loss": bt.item(), "entropy": entropy.item(),
                            "val_loss": loss_val})
            if loss_val < best[0]:
                best = (loss_val, copy.deepcopy(gate.state_dict()))
        elif step % 100 == 0 or step == config.steps - 1:
            history.append({"step": step, "loss": fit.item(), "bt_loss": bt.item(), "entropy": entropy.item()})
    if best[1] is not None:
        gate.load_state_dict(best[1])
    return gate.eval(), history


def _route_loss(weights: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy of the gate's shares (B, K) against each pair's target objective (B,; -1: none)."""
    named = target >= 0
    if not bool(named.any()):
        return weights.sum() * 0.0
    p = weights[named] / weights[named].sum(1, keepdim=True)
    nll = -torch.log(p.gather(1, target[named, None])[:, 0] + 1e-9)
    return (nll * w[named]).sum() / w[named].sum()


@torch.no_grad()
def _validation_loss(gate: GatingNetwork, held: tuple[torch.Tensor, ...],
                     config: GateTrainConfig | None = None) -> float:
    """The gate's weighted training loss (without dropout) on validation pairs: Bradley-Terry, the routing
    cross-entropy (config.route), or their sum with config.route_weight; leaves it in train mode."""
    config = config or GateTrainConfig()
    x, d, w, m, *target = held
    gate.eval()
    raw = gate(x)
    gate.train()
    margin = (_masked(raw, m) * d).sum(1)
    bt = float((F.softplus(-margin) * w).sum() / w.sum())
    if not target:
        return bt
    ce = float(_route_loss(raw, target[0], w))
    return ce if config.route else bt + config.route_weight * ce


def _fold_standardiser(gate: GatingNetwork, mu: np.ndarray, sd: np.ndarray) -> None:
    """Fold the standardisation into the first layer, so the gate reads raw states: W' = W / sd, b' = b - W' mu."""
    first = gate.layers[0]
    w_new = first.weight / torch.tensor(sd, dtype=torch.float32)
    first.bias.copy_(first.bias - w_new @ torch.tensor(mu, dtype=torch.float32))
    first.weight.copy_(w_new)


def _exclude(gate: GatingNetwork, never: torch.Tensor) -> None:
    """Give objectives masked on every training pair (never (K,) True) exactly zero weight: their logit is pinned
    far below the others, so the softmax spends the whole of logit_scale on the objectives that can buy score."""
    if not bool(never.any()) or bool(never.all()):
        return
    last = gate.layers[-1]
    last.weight[never] = 0.0
    last.bias[never] = -1e4 * gate.temperature


def _masked(g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gate weights (B, K) renormalised over the objectives measured on each pair (same total)."""
    kept = g * mask
    return kept / kept.sum(1, keepdim=True).clamp(min=1e-12) * g.sum(1, keepdim=True)


@torch.no_grad()
def gate_weights(gate: nn.Module, prompt_states: np.ndarray) -> np.ndarray:
    """Gate outputs (n, K) for raw prompt states (n, D)."""
    gate.eval()
    return gate(torch.tensor(prompt_states, dtype=torch.float32)).numpy()
