"""A trained trunk on MiniLM: its top encoder layers fine-tuned with a pairwise loss on cached lower-layer states.

The frozen reward features are mean-pooled layer-6 states of all-MiniLM-L6-v2. Here layers 5-6 (copies, the
frozen encoder is untouched) are trained, with mean pooling and a linear `quality` head, by a Bradley-Terry loss
whose logit carries a length term fitted with it and dropped at inference:

    logit = q(chosen) - q(rejected) + beta * (log words(chosen) - log words(rejected))

so the length preference of the training pairs goes into beta, and q learns what decides pairs beyond length.
Further style terms (training/style.py: markdown) add columns to the covariate and entries to beta, the same way.
States after `lower_layers` layers are computed once (bfloat16 bits, as uint16 numpy arrays, so the numpy-only
cache stores them) and reused by every epoch and fold.

Token layout ("budgeted", as features.py): [CLS] the last `prompt_tokens` tokens of the last user turn, then the
response's first tokens, [SEP]; `max_tokens` in all, so the response is always read.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mo_explorer import schema

log = logging.getLogger(__name__)

WEIGHTS_FILE = "trunk.safetensors"
MEMBER_FILE = "trunk-{}.safetensors"  # an ensemble's further members (training.trunk_ensemble)
PART_FILE = "{}.part-{}.safetensors"  # the further parts of one member's weights (a trunk over MAX_FILE_BYTES)
MAX_FILE_BYTES = 9_000_000  # a Space takes files under 10 MB without git-lfs


@dataclass(frozen=True)
class TrunkSpec:
    """Which layers are cached and which trained, and the token budget; stored beside the weights."""

    lower_layers: int = 4  # states after this many encoder layers are cached
    top_layers: int = 2  # the layers above, trained
    max_tokens: int = 128  # [CLS] + question + response + [SEP]
    prompt_tokens: int = 64  # the last tokens of the last user turn

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrunkSpec:
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class FitSettings:
    """Optimisation of the trunk: weighted pair sampling, AdamW, linear warm-up then decay."""

    steps: int = 400
    batch_pairs: int = 8  # 2 x 8 sequences per step
    lr: float = 5e-5  # trunk layers
    head_lr: float = 1e-3  # quality head and beta
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of steps
    length_term: bool = True  # False: beta stays 0 (the ablation)
    seed: int = 0


def budgeted_ids(tokenizer, prompt: schema.Prompt, response: str, spec: TrunkSpec) -> list[int]:
    """Token ids [CLS] question[-prompt_tokens:] + response [SEP], at most spec.max_tokens long."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    question = ids(schema.prompt_text(prompt))[-spec.prompt_tokens:]
    room = spec.max_tokens - 2 - len(question)
    return [tokenizer.cls_token_id, *question, *ids(response)[:room], tokenizer.sep_token_id]


def _additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 0/1 -> (B, 1, 1, T) additive attention mask, as BertModel builds for its layers."""
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def _run_layers(layers, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    ext = _additive_mask(mask)
    for layer in layers:
        out = layer(hidden, attention_mask=ext)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def pad_states(states: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16-bit arrays (T_i, D) uint16 -> padded float32 states (B, T, D) and mask (B, T)."""
    width, dim = max(len(s) for s in states), states[0].shape[1]
    bits = np.zeros((len(states), width, dim), np.uint16)
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for i, s in enumerate(states):
        bits[i, : len(s)] = s
        mask[i, : len(s)] = 1
    hidden = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16).float()
    return hidden, mask


class LowerEncoder:
    """States after the first `lower_layers` encoder layers of a BERT-like model (no grad), as bf16 bits."""

    def __init__(self, model, spec: TrunkSpec, batch_size: int = 16):
        self.model, self.spec, self.batch_size = model, spec, batch_size

    @torch.no_grad()
    def hidden(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) float states after the lower layers."""
        hidden = self.model.embeddings(input_ids=input_ids)
        return _run_layers(self.model.encoder.layer[: self.spec.lower_layers], hidden, mask)

    def states(self, pieces: Sequence[list[int]]) -> list[np.ndarray]:
        """Per id list (with its [CLS]/[SEP]): (T_i, D) uint16, the bfloat16 bits of its lower-layer states."""
        pad = self.model.config.pad_token_id or 0
        out: list[np.ndarray | None] = [None] * len(pieces)
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))  # similar lengths: little padding
        for start in range(0, len(pieces), self.batch_size):
            idx = order[start:start + self.batch_size]
            width = max(len(pieces[i]) for i in idx)
            ids = torch.tensor([pieces[i] + [pad] * (width - len(pieces[i])) for i in idx])
            mask = torch.tensor([[1] * len(pieces[i]) + [0] * (width - len(pieces[i])) for i in idx])
            bits = self.hidden(ids, mask).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
            for row, i in enumerate(idx):
                out[i] = bits[row, : len(pieces[i])].copy()
        return out  # type: ignore[return-value]


class Trunk(nn.Module):
    """Top encoder layers + mean pooling + a linear quality head; beta holds the training-only style terms (length
    first)."""

    def __init__(self, layers: Sequence[nn.Module], hidden_size: int, style_terms: int = 1):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.quality = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.quality.weight)
        nn.init.zeros_(self.quality.bias)
        self.beta = nn.Parameter(torch.zeros(style_terms))

    @classmethod
    def from_encoder(cls, model, spec: TrunkSpec, style_terms: int = 1) -> Trunk:
        """Copies of the encoder's layers above spec.lower_layers (MiniLM's layers 5-6), a zero head."""
        top = model.encoder.layer[spec.lower_layers: spec.lower_layers + spec.top_layers]
        return cls([copy.deepcopy(layer) for layer in top], model.config.hidden_size, style_terms)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower-layer states (B, T, D) and mask (B, T) -> pooled (B, D), quality (B,)."""
        hidden = _run_layers(self.layers, hidden, mask)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)  # (B, D)
        return pooled, self.quality(pooled)[:, 0]


def pair_loss(trunk: Trunk, chosen: Sequence[np.ndarray], rejected: Sequence[np.ndarray],
              style_diff: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted Bradley-Terry loss of a batch of pairs, with the style terms style_diff (B, k) @ beta (length
    first)."""
    hidden, mask = pad_states(list(chosen) + list(rejected))
    _, q = trunk(hidden, mask)  # (2B,)
    n = len(chosen)
    logit = q[:n] - q[n:] + style_diff @ trunk.beta  # (B,)
    return -(weight * F.logsigmoid(logit)).sum() / weight.sum()


def fit_pairs(trunk: Trunk, chosen: Sequence[np.ndarray], rejected: Sequence[np.ndarray],
              style_diff: np.ndarray, weights: np.ndarray, settings: FitSettings) -> dict:
    """Train on pairs (states as bf16 bits); pairs are drawn with probability proportional to `weights` (n,).
    `style_diff`: the log length difference (n,), or (n, k) with further style terms, one per entry of beta."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    style_diff = np.asarray(style_diff, float).reshape(len(chosen), -1)
    if style_diff.shape[1] != trunk.beta.numel():
        raise ValueError(f"{style_diff.shape[1]} style terms for a trunk built with {trunk.beta.numel()}")
    if settings.length_term:  # start from style alone: q is then pushed only by what style does not explain
        with torch.no_grad():
            trunk.beta.copy_(torch.tensor(style_beta(style_diff, weights), dtype=torch.float32))
    else:
        trunk.beta.requires_grad_(False)
    head = [trunk.quality.weight, trunk.quality.bias] + ([trunk.beta] if settings.length_term else [])
    opt = torch.optim.AdamW([{"params": trunk.layers.parameters(), "lr": settings.lr},
                             {"params": head, "lr": settings.head_lr, "weight_decay": 0.0}],
                            weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, settings.steps, settings.warmup))
    p = weights / weights.sum()
    draws = rng.choice(len(p), size=(settings.steps, settings.batch_pairs), p=p)
    trunk.train()
    losses = []
    for step, idx in enumerate(draws):
        loss = pair_loss(trunk, [chosen[i] for i in idx], [rejected[i] for i in idx],
                         torch.tensor(style_diff[idx], dtype=torch.float32), torch.ones(len(idx)))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trunk.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            log.info("step %d/%d loss %.4f beta %s", step + 1, settings.steps, np.mean(losses[-100:]),
                     np.round(trunk.beta.tolist(), 3).tolist())
    trunk.eval()
    tail = max(1, len(losses) // 10)
    return {"steps": settings.steps, "loss_first": float(np.mean(losses[:tail])),
            "loss_last": float(np.mean(losses[-tail:])), "beta": trunk.beta.tolist()}


def style_beta(style_diff: np.ndarray, weights: np.ndarray | None = None, iters: int = 25) -> np.ndarray:
    """The weighted Bradley-Terry fit of style alone: beta (k,) maximising sum w log sigmoid(style_diff @ beta)
    (Newton), style_diff (n,) or (n, k)."""
    x = np.asarray(style_diff, float).reshape(len(style_diff), -1)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, float)
    w, beta = w / w.sum(), np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-x @ beta))
        hess = (x * (w * p * (1.0 - p))[:, None]).T @ x + 1e-9 * np.eye(x.shape[1])
        beta += np.linalg.solve(hess, x.T @ (w * (1.0 - p)))
    return beta


@torch.no_grad()
def score_states(trunk: Trunk, states: Sequence[np.ndarray], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Pooled states (n, D) and quality (n,) of cached lower-layer states, in eval mode."""
    trunk.eval()
    order = sorted(range(len(states)), key=lambda i: len(states[i]))
    pooled = np.zeros((len(states), trunk.quality.in_features), np.float32)
    quality = np.zeros(len(states), np.float32)
    for start in range(0, len(states), batch_size):
        idx = order[start:start + batch_size]
        pl, q = trunk(*pad_states([states[i] for i in idx]))
        pooled[idx], quality[idx] = pl.numpy(), q.numpy()
    return pooled, quality


def save_trunk(trunk: Trunk, spec: TrunkSpec, directory: str | Path, report: dict | None = None,
               max_file_bytes: int = MAX_FILE_BYTES) -> Path:
    """Write trunk.safetensors (top layers + quality head; beta is not needed to score) and trunk.json.

    The weights are stored in bfloat16 and read back into float32: 7 MB rather than 14 for two layers, under the 10
    MB above which a Hugging Face Space refuses a file pushed without git-lfs (the head ships inside the Space's
    repository). A larger trunk (`--top-layers`) is cut into parts of at most `max_file_bytes`
    (trunk.part-1.safetensors, ...; the first file's metadata counts them).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in trunk.state_dict().items() if k != "beta"}
    parts: list[dict] = [{}]
    for name, t in tensors.items():
        size = t.numel() * t.element_size()
        if parts[-1] and sum(v.numel() * v.element_size() for v in parts[-1].values()) + size > max_file_bytes:
            parts.append({})
        parts[-1][name] = t
    for stale in directory.glob(PART_FILE.format(Path(WEIGHTS_FILE).stem, "*")):
        stale.unlink()
    meta = {"spec": json.dumps(spec.to_json()), "parts": str(len(parts))}
    save_file(parts[0], str(directory / WEIGHTS_FILE), metadata=meta)
    for i, part in enumerate(parts[1:], start=1):
        save_file(part, str(directory / PART_FILE.format(Path(WEIGHTS_FILE).stem, i)))
    (directory / "trunk.json").write_text(json.dumps({"spec": spec.to_json(), "report": report or {}}, indent=2))
    return directory / WEIGHTS_FILE


def trunk_files(directory: str | Path) -> list[Path]:
    """Every weights file of the trunk in `directory`: its members and their parts (what a head directory ships)."""
    return sorted(Path(directory).glob("trunk*.safetensors"))


class TrunkEnsemble(nn.Module):
    """Trunks fitted on the same pairs (`training.trunk_ensemble`): the mean of their pooled states and of their
    qualities, on one pass of the shared lower layers. Members may train different numbers of top layers: a member
    whose cached layers sit higher (layers 5-6 on layer 4) runs the frozen encoder layers in between (`bridges`,
    MiniLM's own layers 3-4) on the states of the lowest member's cache (layer 2)."""

    def __init__(self, members: Sequence[Trunk], bridges: Sequence[Sequence[nn.Module]] | None = None):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.bridges = [list(b) for b in bridges] if bridges is not None else [[] for _ in members]

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m(_run_layers(b, hidden, mask) if b else hidden, mask) for m, b in zip(self.members, self.bridges)]
        return torch.stack([o[0] for o in outs]).mean(0), torch.stack([o[1] for o in outs]).mean(0)


def member_files(directory: str | Path) -> list[Path]:
    """trunk.safetensors, then an ensemble's further members trunk-1.safetensors, trunk-2... (each file stays under
    the 10 MB a Space accepts without git-lfs; a member's parts, trunk-1.part-1.safetensors, are not members)."""
    directory = Path(directory)
    more = [p for p in directory.glob(MEMBER_FILE.format("*")) if ".part-" not in p.name]
    return [directory / WEIGHTS_FILE, *sorted(more, key=lambda p: int(p.stem.rsplit("-", 1)[1]))]


def load_trunk(directory: str | Path, model) -> tuple[Trunk | TrunkEnsemble, TrunkSpec]:
    """The trunk saved in `directory` (an ensemble when it has several members), its layers shaped as `model`'s
    (the MiniLM the features use). An ensemble's spec is its lowest member's: the states it is handed."""
    loaded = [_load_member(path, model) for path in member_files(directory)]
    if len(loaded) == 1:
        return loaded[0]
    specs = [spec for _, spec in loaded]
    if any((s.max_tokens, s.prompt_tokens) != (specs[0].max_tokens, specs[0].prompt_tokens) for s in specs):
        raise ValueError(f"{directory}: the ensemble's members read different tokens (max_tokens, prompt_tokens)")
    base = min(specs, key=lambda s: s.lower_layers)
    bridges = [model.encoder.layer[base.lower_layers: s.lower_layers] for s in specs]
    return TrunkEnsemble([t for t, _ in loaded], bridges).eval(), base


def _load_member(path: Path, model) -> tuple[Trunk, TrunkSpec]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    spec = TrunkSpec.from_json(json.loads(meta["spec"]))
    tensors = load_file(str(path))
    for i in range(1, int(meta.get("parts", "1"))):
        part = path.with_name(PART_FILE.format(path.stem, i))
        if not part.is_file():
            raise ValueError(f"{path}: its part {part.name} is missing (copy every trunk*.safetensors file)")
        tensors.update(load_file(str(part)))
    trunk = Trunk.from_encoder(model, spec)
    missing, unexpected = trunk.load_state_dict(tensors, strict=False)
    if unexpected or set(missing) - {"beta"}:
        raise ValueError(f"{path}: missing {missing}, unexpected {unexpected}")
    return trunk.eval(), spec


class TrunkScorer:
    """The trained trunk's pooled state and quality for (prompt, response) texts, on an already loaded MiniLM."""

    def __init__(self, trunk: Trunk, spec: TrunkSpec, tokenizer, model):
        self.trunk, self.spec, self.tokenizer, self.model = trunk.eval(), spec, tokenizer, model
        self.lower = LowerEncoder(model, spec)

    @classmethod
    def load(cls, directory: str | Path, tokenizer, model) -> TrunkScorer:
        """The trunk saved in `directory` on `model` (its layers 1..lower_layers) and its tokenizer."""
        return cls(*load_trunk(directory, model), tokenizer, model)

    @classmethod
    def on_features(cls, directory: str | Path, extractor) -> TrunkScorer:
        """On the MeanPoolFeatures extractor features.py loaded (shares its tokenizer and model)."""
        return cls.load(directory, extractor.tokenizer, extractor.model)

    @torch.no_grad()
    def encode(self, prompt: schema.Prompt, responses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Pooled trunk states (n, D) float32 and quality scores (n,) of n responses to one prompt."""
        pieces = [budgeted_ids(self.tokenizer, prompt, r, self.spec) for r in responses]
        pad = self.model.config.pad_token_id or 0
        width = max(map(len, pieces))
        ids = torch.tensor([p + [pad] * (width - len(p)) for p in pieces])
        mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in pieces])
        pooled, quality = self.trunk(self.lower.hidden(ids, mask), mask)
        return pooled.float().numpy(), quality.float().numpy()


def load_encoder(path: str, threads: int | None = 1):
    """(tokenizer, BERT-like encoder in eval mode) from a local directory; torch limited to `threads` threads
    (None: the process's setting is left as it is)."""
    from transformers import AutoModel, AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def lr_at(step: int, steps: int, warmup: float) -> float:
    """The schedule's multiplier at a step (for logs and tests): linear warm-up, then linear decay to 0."""
    warm = max(1, int(warmup * steps))
    return min((step + 1) / warm, max(0.0, (steps - step) / max(1, steps - warm)))

