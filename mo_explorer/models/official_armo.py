"""RLHFlow/ArmoRM-Llama3-8B-v0.1 without trust_remote_code.

The checkpoint's own modeling file imports `LLAMA_INPUTS_DOCSTRING`, which transformers removed after 4.51,
so it cannot be loaded with `trust_remote_code=True` on transformers 5. Its tensors are plain, though:
the backbone is a stock Llama (`model.*`, loaded with `LlamaModel.from_pretrained`, which strips the
`model.` prefix) and the heads are `regression_layer.weight`, `gating.layers.{i}.*`, `gating.logit_scale`
and `reward_transform_matrix`, which load unchanged into `models.armo.ArmoHead`.

The official forward pass, reproduced here with batching and attention masks:
- rewards come from the final hidden state of the last real (non-pad) token;
- the gate reads the hidden state at the start of the last occurrence of the tokens the chat template
  writes between the final user turn and the assistant reply (for Llama 3:
  `<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n`); the official code hard-codes those ids,
  here they are derived from the tokenizer's own template;
- score = sum(gating * (rewards @ reward_transform_matrix), dim=1).

On a GPU box (the 8B backbone needs ~16 GB in bfloat16, ~32 GB in float32):

    pip install -r requirements.txt
    huggingface-cli download RLHFlow/ArmoRM-Llama3-8B-v0.1          # or let the first run download it
    MO_EXPLORER_REWARD_MODEL=RLHFlow/ArmoRM-Llama3-8B-v0.1 MO_EXPLORER_DEVICE=cuda \\
    MO_EXPLORER_REWARD_DTYPE=bfloat16 python -m mo_explorer serve

A local copy of the repository works too (MO_EXPLORER_REWARD_MODEL=/path/to/ArmoRM-Llama3-8B-v0.1).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from transformers import AutoTokenizer, LlamaConfig, LlamaModel

from mo_explorer import errors, model_thread, schema
from mo_explorer.models import device as devices
from mo_explorer.models.armo import ArmoHead, HeadConfig
from mo_explorer.models.reward import conversation_texts, gated_output, length_batches, right_pad

log = logging.getLogger(__name__)

HUB_ID = "RLHFlow/ArmoRM-Llama3-8B-v0.1"
ARCHITECTURE = "LlamaForRewardModelWithGating"
# Order of the regression layer's rows, from the model card.
ARMORM_OBJECTIVES = (
    "helpsteer-helpfulness", "helpsteer-correctness", "helpsteer-coherence", "helpsteer-complexity",
    "helpsteer-verbosity", "ultrafeedback-overall_score", "ultrafeedback-instruction_following",
    "ultrafeedback-truthfulness", "ultrafeedback-honesty", "ultrafeedback-helpfulness", "beavertails-is_safe",
    "prometheus-score", "argilla-overall_quality", "argilla-judge_lm", "code-complexity", "code-style",
    "code-explanation", "code-instruction-following", "code-readability",
)
HEAD_PREFIXES = ("regression_layer.", "gating.", "reward_transform_matrix")
_SENTINEL = "\u2063mo-explorer-gate\u2063"  # text no real prompt contains, to locate the template's suffix


def local_checkpoint(name: str) -> Path:
    """A local directory of the checkpoint: the path itself, or a Hub snapshot (downloaded once)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.model", "*.jinja"]))


def read_head_tensors(directory: Path) -> dict[str, torch.Tensor]:
    """The head's tensors (not the backbone's) from the checkpoint's safetensors shard(s)."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        shards: dict[str, list[str]] = {}
        for key, shard in weight_map.items():
            if key.startswith(HEAD_PREFIXES):
                shards.setdefault(shard, []).append(key)
    else:
        shards = {"model.safetensors": []}  # single file: keys found by scanning it
    tensors = {}
    for shard, keys in shards.items():
        with safe_open(str(directory / shard), framework="pt") as f:
            for key in keys or [k for k in f.keys() if k.startswith(HEAD_PREFIXES)]:
                tensors[key] = f.get_tensor(key)
    return tensors


def head_config(config: LlamaConfig, name: str) -> HeadConfig:
    """HeadConfig matching the checkpoint's config (gate sizes from its gating_* fields)."""
    extra = config.to_dict()
    k = int(extra.get("num_objectives", len(ARMORM_OBJECTIVES)))
    objectives = list(ARMORM_OBJECTIVES) if k == len(ARMORM_OBJECTIVES) else [f"objective_{i}" for i in range(k)]
    return HeadConfig(objectives=objectives, hidden_size=config.hidden_size,
                      gate_hidden=int(extra.get("gating_hidden_dim", 1024)),
                      gate_layers=int(extra.get("gating_n_hidden", 3)),
                      temperature=float(extra.get("gating_temperature", 10)),
                      backbone={"name": name, "pooling": "last_token", "gate_token": "assistant_header"})


def gating_pattern(tokenizer) -> list[int]:
    """Token ids the chat template writes between the last user message and the assistant reply."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": _SENTINEL}], add_generation_prompt=True,
                                         tokenize=False)
    suffix = text.split(_SENTINEL)[-1]
    ids = tokenizer(suffix, add_special_tokens=False)["input_ids"]
    if not ids:
        raise errors.ModelError("the chat template writes nothing before the assistant reply; the gate needs it")
    return list(ids)


def find_gating_position(ids: Sequence[int], pattern: Sequence[int]) -> int:
    """Start of the last occurrence of pattern in ids (the official `find_token_for_gating` rule)."""
    n = len(pattern)
    for j in range(len(ids) - n, -1, -1):
        if list(ids[j:j + n]) == list(pattern):
            return j
    raise errors.ModelError("the assistant header of the chat template was not found in the scored text; "
                            "ArmoRM's gate needs the Llama 3 chat template")


class OfficialArmoRewardModel:
    """ArmoRM: a frozen Llama backbone read at two positions, with the official regression layer and gate."""

    def __init__(self, backbone: LlamaModel, head: ArmoHead, tokenizer, model_id: str, device: torch.device,
                 batch_size: int = 4):
        self.backbone = backbone
        self.head = head
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.batch_size = batch_size
        self.objectives = tuple(head.config.objectives)
        self.pattern = gating_pattern(tokenizer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)  # any id works: the attention mask hides padding

    @classmethod
    def load(cls, name: str = HUB_ID, cache_dir: str = "", device: str = "auto", dtype: str = "float32",
             batch_size: int = 4) -> OfficialArmoRewardModel:
        """Load the backbone and heads from a Hub id or local directory, without trust_remote_code."""
        start = time.perf_counter()
        try:
            torch_device = devices.resolve_device(device)
            torch_dtype = devices.resolve_dtype(dtype, torch_device)
            directory = local_checkpoint(name)
            config = LlamaConfig.from_pretrained(directory)
            backbone, info = LlamaModel.from_pretrained(directory, dtype=torch_dtype, output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(directory)
            tensors = read_head_tensors(directory)
        except (OSError, ValueError, RuntimeError) as exc:
            raise errors.ModelError(f"could not load ArmoRM {name!r}: {exc}") from exc
        if info["missing_keys"]:
            raise errors.ModelError(f"ArmoRM {name!r}: backbone weights missing from the checkpoint: "
                                    f"{sorted(info['missing_keys'])[:5]}")
        head = ArmoHead(head_config(config, name))
        try:
            head.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
        except RuntimeError as exc:
            raise errors.ModelError(f"ArmoRM {name!r}: head tensors do not match: {exc}") from exc
        # The head stays float32: it is tiny, and the gate's softmax is where low precision would hurt.
        backbone = backbone.to(torch_device).eval()
        head = head.to(torch_device).eval()
        log.info("loaded ArmoRM %s (%s, %s) in %.1f s", name, torch_device, torch_dtype, time.perf_counter() - start)
        return cls(backbone, head, tokenizer, name, torch_device, batch_size)

    def encode(self, prompt: schema.Prompt, responses: Sequence[str]) -> list[list[int]]:
        """Token ids of each full conversation, as the chat template writes them (BOS included once)."""
        texts = conversation_texts(self.tokenizer, prompt, responses)
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    @model_thread.runs_on_model_thread
    def score(self, prompt: schema.Prompt, responses: Sequence[str]) -> schema.RewardOutput:
        """Rewards (n, 19), the prompt's gating (19,), the transform (19, 19) and the score (n,)."""
        k = len(self.objectives)
        transform = self.head.reward_transform_matrix.detach().float().cpu().numpy()
        if not responses:
            return gated_output(self.objectives, np.zeros((0, k), np.float32), np.full(k, 1.0 / k), transform)
        rows = self.encode(prompt, responses)
        gate_at = [find_gating_position(r, self.pattern) for r in rows]
        rewards = np.zeros((len(rows), k), dtype=np.float32)
        gatings = np.zeros((len(rows), k), dtype=np.float32)
        try:
            with torch.inference_mode():
                for batch in length_batches([len(r) for r in rows], self.batch_size):
                    ids, mask = right_pad([rows[i] for i in batch], self.pad_id)
                    hidden = self.backbone(input_ids=ids.to(self.device),
                                           attention_mask=mask.to(self.device)).last_hidden_state  # (B, T, D)
                    at = torch.arange(len(batch), device=hidden.device)
                    last = (mask.sum(dim=1) - 1).to(hidden.device)  # right padding: last real token
                    gate = torch.tensor([gate_at[i] for i in batch], device=hidden.device)
                    r, g, _ = self.head(hidden[at, last].float(), hidden[at, gate].float())  # (B, K) each
                    rewards[batch] = r.cpu().numpy()
                    gatings[batch] = g.cpu().numpy()
        except (RuntimeError, ValueError, IndexError) as exc:
            raise errors.ModelError(f"ArmoRM {self.model_id!r} failed while scoring: {exc}") from exc
        # The gate sees only the prompt, so its rows agree up to float noise; one vector describes the prompt.
        return gated_output(self.objectives, rewards, gatings.mean(axis=0), transform)


def is_official_armo(name: str) -> bool:
    """True for the ArmoRM Hub id (or any name containing 'ArmoRM') or a directory whose config says so."""
    if "armorm" in name.lower():
        return True
    config = Path(name).expanduser() / "config.json"
    if not config.is_file():
        return False
    try:
        return ARCHITECTURE in (json.loads(config.read_text()).get("architectures") or [])
    except (OSError, json.JSONDecodeError):
        return False
