"""ArmoRM's heads on a frozen backbone: regression layer, gating network, reward transform.

Parameter names follow RLHFlow/ArmoRM-Llama3-8B-v0.1 (`regression_layer.weight`, `gating.layers.{i}.*`,
`gating.logit_scale`, `reward_transform_matrix`) so the official checkpoint's tensors load into this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

HEAD_FORMAT = "mo-explorer-armo-head"
HEAD_CONFIG = "config.json"
HEAD_WEIGHTS = "model.safetensors"


@dataclass
class HeadConfig:
    """Shape and provenance of a head directory (config.json)."""

    objectives: list[str]
    hidden_size: int  # feature size the regression layer and gate read
    gate_hidden: int = 1024
    gate_layers: int = 3  # hidden layers of the gate (ArmoRM: 3)
    temperature: float = 10.0
    gate_input_size: int | None = None  # defaults to hidden_size
    gate_members: int = 1  # >1: the gate is the mean of that many independently trained gates (GateEnsemble)
    gate_floor: list[float] | None = None  # per objective, a share of the weight the gate always gives it
    backbone: dict = field(default_factory=dict)  # how features are made: name, layer, pooling, ...
    extra: dict = field(default_factory=dict)  # training provenance, metrics, feature normalisation notes

    def to_json(self) -> dict:
        return {"format": HEAD_FORMAT, "version": 1, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> HeadConfig:
        if data.get("format") != HEAD_FORMAT:
            raise ValueError(f"not a mo-explorer head config (format={data.get('format')!r})")
        keys = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in keys})


class GatingNetwork(nn.Module):
    """Prompt state -> objective weights: MLP, softmax over objectives / temperature, times logit_scale.

    With a `floor` (K,) summing to s < 1, the weights are floor + (1 - s) * softmax: an objective that judges every
    request (the trained trunk's quality) keeps its share, and the prompt decides only how the rest is spread.
    The floor is configuration (HeadConfig.gate_floor), not a tensor of the checkpoint.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 1024, n_hidden: int = 3,
                 temperature: float = 10.0, logit_scale: float = 1.0, dropout: float = 0.0,
                 floor: list[float] | None = None):
        super().__init__()
        floor_t = torch.zeros(out_features) if floor is None else torch.tensor(floor, dtype=torch.float32)
        if floor_t.shape != (out_features,) or bool((floor_t < 0).any()) or float(floor_t.sum()) >= 1.0:
            raise ValueError(f"gate floor must be {out_features} non-negative shares summing below 1, got {floor}")
        self.register_buffer("floor", floor_t, persistent=False)
        self.temperature = temperature
        self.dropout = dropout
        self.logit_scale = nn.Parameter(torch.ones(1) * logit_scale)
        sizes = [in_features] + [hidden] * n_hidden
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
                                    + [nn.Linear(sizes[-1], out_features)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, K) non-negative weights summing to logit_scale."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.dropout(F.relu(x), p=self.dropout, training=self.training)
        # Softmax over objectives (dim=1), not over the chosen/rejected pair as in the public stage-2 script.
        p = F.softmax(x / self.temperature, dim=1)
        if bool((self.floor > 0).any()):
            p = self.floor + (1.0 - self.floor.sum()) * p
        return p * self.logit_scale[0]


class GateEnsemble(nn.Module):
    """The mean of several gates' weights: the gates differ only in their training seed.

    One gate's optimum moves with its seed and with float-level noise in the features (dev accuracy spread over
    3 points across seeds on identical features); the mean of five moves less and scores above the mean single
    gate. With one member the head keeps ArmoRM's parameter names (`gating.layers.*`).
    """

    def __init__(self, members: list[GatingNetwork]):
        super().__init__()
        self.members = nn.ModuleList(members)

    @property
    def layers(self) -> nn.ModuleList:
        return self.members[0].layers

    @property
    def temperature(self) -> float:
        return self.members[0].temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def gating_network(config: HeadConfig) -> nn.Module:
    """The gate a head config describes: one GatingNetwork, or a GateEnsemble of `gate_members` of them."""
    def one():
        return GatingNetwork(config.gate_input_size or config.hidden_size, len(config.objectives),
                             config.gate_hidden, config.gate_layers, config.temperature, floor=config.gate_floor)
    return one() if config.gate_members <= 1 else GateEnsemble([one() for _ in range(config.gate_members)])


class ArmoHead(nn.Module):
    """Regression heads + gate + transform: the trainable part of an ArmoRM-style reward model."""

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        k = len(config.objectives)
        self.regression_layer = nn.Linear(config.hidden_size, k, bias=False)
        self.gating = gating_network(config)
        self.reward_transform_matrix = nn.Parameter(torch.eye(k), requires_grad=False)

    def forward(self, response_states: torch.Tensor, prompt_states: torch.Tensor):
        """(B, D) response states, (B, Dg) prompt states -> rewards (B, K), gating (B, K), score (B,)."""
        rewards = self.regression_layer(response_states)
        gating = self.gating(prompt_states)
        score = torch.sum(gating * (rewards @ self.reward_transform_matrix), dim=1)
        return rewards, gating, score

    def save(self, directory: str | Path) -> None:
        """Write config.json and model.safetensors (heads and gate only: small)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / HEAD_CONFIG).write_text(json.dumps(self.config.to_json(), indent=2) + "\n")
        tensors = {k: v.detach().contiguous().float().cpu() for k, v in self.state_dict().items()}
        save_file(tensors, str(directory / HEAD_WEIGHTS), metadata={"format": HEAD_FORMAT})

    @classmethod
    def load(cls, directory: str | Path) -> ArmoHead:
        """Read a head directory written by `save` (or by `python -m mo_explorer train`)."""
        directory = Path(directory)
        config = HeadConfig.from_json(json.loads((directory / HEAD_CONFIG).read_text()))
        head = cls(config)
        head.load_state_dict(load_file(str(directory / HEAD_WEIGHTS)))
        return head.eval()


def is_head_dir(path: str | Path) -> bool:
    """True when path holds a head config (weights may still be missing)."""
    p = Path(path) / HEAD_CONFIG
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("format") == HEAD_FORMAT
    except (OSError, json.JSONDecodeError):
        return False
