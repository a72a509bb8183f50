"""Stage 2 of the ArmoRM recipe: train the gating network with the Bradley-Terry loss (torch part of training).

The regression heads and the transform are frozen; only the gate learns. Inputs are precomputed:
the prompt states of each pair and the transformed reward difference (r_chosen - r_rejected) @ T, so one epoch
over thousands of pairs is a few matrix products.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from mo_explorer.models.armo import GatingNetwork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateTrainConfig:
    """Optimiser settings (ArmoRM: AdamW lr 1e-3, cosine schedule, dropout 0.2)."""

    hidden: int = 256
    n_hidden: int = 2
    temperature: float = 10.0
    steps: int = 600
    lr: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.2
    batch_size: int = 512
    entropy_weight: float = 0.01  # bonus on the gate's entropy: guards against collapse onto one objective
    seed: int = 0


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and std (D,) of features (n, D); std is inf for a feature constant in training.

    MiniLM's pooled states hold three dimensions that are 0 up to 1e-9: dividing by a tiny std folded scales of
    1e5 into the gate's first layer, so float noise in a new prompt's state moved the gate. A constant feature
    carries no information; an infinite std gives it exactly zero weight.
    """
    sd = x.std(0)
    return x.mean(0), np.where(sd > 1e-6 * max(float(sd.max()), 1e-12), sd, np.inf)


def train_gate(prompt_states: np.ndarray, reward_diff: np.ndarray, config: GateTrainConfig,
               weights: np.ndarray | None = None, mask: np.ndarray | None = None) -> tuple[GatingNetwork, dict]:
    """Fit a gate on pairs: prompt_states (n, D), reward_diff (n, K) = (r_c - r_r) @ T; returns (gate, log).

    The gate's first layer absorbs the feature standardisation, so the returned module reads raw states.
    `weights` (n,) reweights pairs (e.g. to balance sources); `mask` (n, K) is 0 where an objective was not
    measured on a pair: the gate's weight is renormalised over the measured ones for that pair.
    """
    threads = torch.get_num_threads()
    # The gate is tiny: one thread avoids OpenMP spinning against other processes on a shared CPU.
    torch.set_num_threads(1)
    try:
        return _train_gate(prompt_states, reward_diff, config, weights, mask)
    finally:
        torch.set_num_threads(threads)


def _train_gate(prompt_states, reward_diff, config, weights, mask):
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    mu, sd = standardiser(prompt_states)
    x = torch.tensor((prompt_states - mu) / sd, dtype=torch.float32)
    d = torch.tensor(reward_diff, dtype=torch.float32)
    w = torch.tensor(np.ones(len(d)) if weights is None else weights, dtype=torch.float32)
    m = torch.tensor(np.ones(d.shape) if mask is None else mask, dtype=torch.float32)
    n, k = d.shape
    gate = GatingNetwork(x.shape[1], k, config.hidden, config.n_hidden, config.temperature,
                         dropout=config.dropout)
    opt = torch.optim.AdamW(gate.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / config.steps)))
    gate.train()
    history = []
    for step in range(config.steps):
        idx = torch.tensor(rng.choice(n, size=min(config.batch_size, n), replace=False))
        g = _masked(gate(x[idx]), m[idx])  # (B, K)
        margin = (g * d[idx]).sum(1)  # score_chosen - score_rejected
        bt = (F.softplus(-margin) * w[idx]).sum() / w[idx].sum()  # -log sigmoid(margin): Bradley-Terry
        p = g / g.sum(1, keepdim=True)
        entropy = -(p * torch.log(p + 1e-9)).sum(1).mean()
        loss = bt - config.entropy_weight * entropy
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == config.steps - 1:
            history.append({"step": step, "bt_loss": bt.item(), "entropy": entropy.item()})
    gate.eval()
    with torch.no_grad():
        margin = (_masked(gate(x), m) * d).sum(1)
        train_acc = float((margin > 0).float().mean())
        first = gate.layers[0]
        # Fold the standardisation into the first layer: W' = W / sd, b' = b - W' @ mu.
        w_new = first.weight / torch.tensor(sd, dtype=torch.float32)
        first.bias.copy_(first.bias - w_new @ torch.tensor(mu, dtype=torch.float32))
        first.weight.copy_(w_new)
    log.info("gate: %d pairs, %d steps, train accuracy %.3f, final BT loss %.4f", n, config.steps, train_acc,
             history[-1]["bt_loss"])
    return gate, {"train_accuracy": train_acc, "history": history}


def _masked(g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gate weights (B, K) renormalised over the objectives measured on each pair (same total)."""
    kept = g * mask
    return kept / kept.sum(1, keepdim=True).clamp(min=1e-12) * g.sum(1, keepdim=True)


@torch.no_grad()
def gate_weights(gate: GatingNetwork, prompt_states: np.ndarray) -> np.ndarray:
    """Gate outputs (n, K) for raw prompt states (n, D)."""
    gate.eval()
    return gate(torch.tensor(prompt_states, dtype=torch.float32)).numpy()
