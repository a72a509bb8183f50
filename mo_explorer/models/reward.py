"""The interface every reward model implements, and a loader for plain sequence-classification reward models.

Every reward model answers in ArmoRM's shape (reward-bench style): per-objective `rewards`, the prompt's
`gating` weights, the `transform` and the gated `score`, so the core treats a one-label classifier and
ArmoRM alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from mo_explorer import errors, model_thread, schema
from mo_explorer.models import device as devices
from mo_explorer.models import embedded

log = logging.getLogger(__name__)


@runtime_checkable
class RewardModel(Protocol):
    """What the core needs from a reward model."""

    model_id: str
    objectives: tuple[str, ...]

    def score(self, prompt: schema.Prompt, responses: Sequence[str]) -> schema.RewardOutput:
        """Score n responses to one prompt: rewards (n, k), gating (k,), transform (k, k), score (n,)."""
        ...


def gated_output(objectives: Sequence[str], rewards: np.ndarray, gating: np.ndarray,
                 transform: np.ndarray) -> schema.RewardOutput:
    """RewardOutput from rewards (n, k), gating (k,), transform (k, k), with score recomputed from them."""
    rewards = np.asarray(rewards, dtype=np.float32).reshape(-1, len(objectives))
    gating = np.asarray(gating, dtype=np.float32)
    transform = np.asarray(transform, dtype=np.float32)
    # Recomputed here, in one place, so the identity score == sum(gating * (rewards @ T)) holds exactly.
    score = np.sum(gating[None, :] * (rewards @ transform), axis=1).astype(np.float32)
    return schema.RewardOutput(objectives=tuple(objectives), rewards=rewards, gating=gating,
                               transform=transform, score=score)


def conversation_texts(tokenizer, prompt: schema.Prompt, responses: Sequence[str]) -> list[str]:
    """Each (prompt, response) rendered as a full conversation with the tokenizer's chat template."""
    messages = schema.as_messages(prompt)
    return [tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": r}], tokenize=False)
            for r in responses]


def right_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> input_ids (B, T) padded on the right with pad_id, attention_mask (B, T)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[i, :len(row)] = 1
    return ids, mask


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, so little compute goes into padding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class SequenceClassificationRewardModel:
    """Any AutoModelForSequenceClassification reward model: one objective per label, uniform gate."""

    def __init__(self, model, tokenizer, model_id: str, device: torch.device, batch_size: int = 8):
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.batch_size = batch_size
        config = model.config
        self.objectives = label_names(config)
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        # Pad with the id the model's pooling looks for, so padding never changes which token is read.
        pad_id = text_config.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            if pad_id is None:
                raise errors.ModelError(f"reward model {model_id!r} has no pad or EOS token to pad batches with")
            text_config.pad_token_id = pad_id
        self.pad_id = int(pad_id)
        # Tokenizers without a limit report a huge sentinel for model_max_length: ignore it.
        limits = [int(x) for x in (getattr(text_config, "max_position_embeddings", None), tokenizer.model_max_length)
                  if x is not None and x < 10**9]
        self.max_length = min(limits) if limits else None

    @classmethod
    def load(cls, name: str, cache_dir: str, device: str = "auto", dtype: str = "float32",
             batch_size: int = 8) -> SequenceClassificationRewardModel:
        """Load a sequence-classification reward model by Hub id or local directory."""
        try:
            torch_device = devices.resolve_device(device)
            torch_dtype = devices.resolve_dtype(dtype, torch_device)
            path = embedded.resolve_model_path(name, cache_dir)
            start = time.perf_counter()
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch_dtype)
            model = model.to(torch_device).eval()
        except (OSError, ValueError, RuntimeError) as exc:
            raise errors.ModelError(f"could not load reward model {name!r}: {exc}") from exc
        log.info("loaded reward model %s (%d objectives) in %.1f s", name, model.config.num_labels,
                 time.perf_counter() - start)
        return cls(model, tokenizer, name, torch_device, batch_size)

    def _encode(self, prompt: schema.Prompt, responses: Sequence[str]) -> list[list[int]]:
        """Token ids of each (prompt, response): chat template when there is one, else a text pair."""
        truncate = {"truncation": self.max_length is not None, "max_length": self.max_length}
        if self.tokenizer.chat_template is not None:
            texts = conversation_texts(self.tokenizer, prompt, responses)
            # The template already writes BOS and friends: adding special tokens again would double them.
            return self.tokenizer(texts, add_special_tokens=False, **truncate)["input_ids"]
        question = schema.prompt_text(prompt)
        return self.tokenizer([question] * len(responses), list(responses), **truncate)["input_ids"]

    @model_thread.runs_on_model_thread
    def score(self, prompt: schema.Prompt, responses: Sequence[str]) -> schema.RewardOutput:
        """Rewards (n, k) are the model's logits; gating is uniform 1/k and the transform the identity."""
        k = len(self.objectives)
        gating, transform = np.full(k, 1.0 / k, dtype=np.float32), np.eye(k, dtype=np.float32)
        if not responses:
            return gated_output(self.objectives, np.zeros((0, k), np.float32), gating, transform)
        rows = self._encode(prompt, responses)
        rewards = np.zeros((len(rows), k), dtype=np.float32)
        try:
            with torch.inference_mode():
                for batch in length_batches([len(r) for r in rows], self.batch_size):
                    ids, mask = right_pad([rows[i] for i in batch], self.pad_id)
                    logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                    rewards[batch] = logits.float().cpu().numpy()  # (b, k)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise errors.ModelError(f"reward model {self.model_id!r} failed while scoring: {exc}") from exc
        return gated_output(self.objectives, rewards, gating, transform)


def label_names(config) -> tuple[str, ...]:
    """Objective names from config.id2label in label order; a lone generic label is called 'reward'."""
    k = int(config.num_labels)
    id2label = {int(i): str(name) for i, name in (config.id2label or {}).items()}
    names = tuple(id2label.get(i, f"LABEL_{i}") for i in range(k))
    if k == 1 and names[0] == "LABEL_0":
        return ("reward",)
    return names
