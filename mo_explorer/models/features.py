"""Frozen-backbone features for the reward head: response states, prompt states, mean token log-prob.

Causal-LM backbones (SmolLM2, any Llama-like Hub model): the prompt (chat template, add_generation_prompt=True)
is encoded once and its KV cache is reused for all n responses of that prompt. The response feature is the hidden
state after `layer` decoder layers at the last token of prompt + response (chat template applied, so the last
token is the template's closing token); the prompt feature (the gate's input) is the state at the prompt's last
token. States are captured with forward hooks on the decoder layers, so "layer L" always means the raw residual
stream after L layers, whether the model is run to the end or stopped at L.

Truncation policy (documented in the model card): the templated prompt keeps its last `max_prompt_tokens` tokens
(the question sits at the end); a response keeps its first `max_response_tokens - tail` tokens plus the template's
closing tokens, so the feature token is always the closing token.

MiniLM (sentence-transformers all-MiniLM-L6-v2): mean pooling over at most 256 tokens; no log-prob. Two text
layouts (FeatureSpec.layout):
- "joined" (heads trained before 2026-11-28): the last user turn (gate input), and that turn followed by the
  response, cut at 256 tokens (response feature). A user turn of 250 tokens left the response unread.
- "budgeted": the gate reads every user turn of the conversation, keeping the last 254 tokens (the newest request
  and as much of the earlier ones as fits); the response feature reads the last `max_prompt_tokens` tokens of the
  last user turn followed by the response's first tokens, up to 254 in all, so the response is always read.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from mo_explorer import schema
from mo_explorer.models.device import resolve_device, resolve_dtype
from mo_explorer.models.embedded import MINILM, resolve_model_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSpec:
    """How features are made: stored in the head's config.json under `backbone`."""

    name: str  # 'embedded:smollm2', 'embedded:minilm', a Hub id or a local path
    layers: tuple[int, ...] = (12,)  # decoder layers whose output is captured (causal LMs)
    pooling: str = "last"  # 'last' (causal LMs) or 'mean' (sentence encoders)
    logprob: bool = True  # compute the mean token log-prob (needs the full depth)
    max_prompt_tokens: int = 256
    max_response_tokens: int = 384
    batch_size: int = 8
    layout: str = "joined"  # mean pooling only: "joined" or "budgeted" (module docstring)

    def to_json(self) -> dict:
        out = {"name": self.name, "layers": list(self.layers), "pooling": self.pooling, "logprob": self.logprob,
               "max_prompt_tokens": self.max_prompt_tokens, "max_response_tokens": self.max_response_tokens}
        if self.layout != "joined":  # absent from older specs: their cache keys and head configs stay valid
            out["layout"] = self.layout
        return out

    @classmethod
    def from_json(cls, data: dict) -> FeatureSpec:
        return cls(name=data["name"], layers=tuple(data.get("layers", (12,))), pooling=data.get("pooling", "last"),
                   logprob=bool(data.get("logprob", False)),
                   max_prompt_tokens=int(data.get("max_prompt_tokens", 256)),
                   max_response_tokens=int(data.get("max_response_tokens", 384)),
                   layout=str(data.get("layout", "joined")))


@dataclass
class GroupFeatures:
    """Features of one prompt and its n responses."""

    prompt_states: np.ndarray  # (L, D) float32, one row per captured layer
    response_states: np.ndarray  # (n, L, D) float32
    mean_logprob: np.ndarray  # (n,) float32; NaN when not computed
    n_tokens: np.ndarray  # (n,) int32 response tokens scored (after truncation)


def load_extractor(spec: FeatureSpec, cache_dir: str, device: str = "auto", dtype: str = "float32"):
    """The extractor for a spec: CausalLMFeatures or MeanPoolFeatures."""
    path = resolve_model_path(spec.name, cache_dir)
    if spec.pooling == "mean" or spec.name == MINILM:
        return MeanPoolFeatures(path, spec, device)
    return CausalLMFeatures(path, spec, device, dtype)


class CausalLMFeatures:
    """Hidden states and log-probs of a causal LM, with the prompt's KV cache shared by its responses."""

    def __init__(self, path: str, spec: FeatureSpec, device: str = "auto", dtype: str = "float32"):
        from mo_explorer.models.loading import causal_lm

        self.spec = spec
        self.device = resolve_device(device)
        self.tokenizer, self.model = causal_lm(path, self.device, resolve_dtype(dtype, self.device))
        n_layers = self.model.config.num_hidden_layers
        if any(not 1 <= layer <= n_layers for layer in spec.layers):
            raise ValueError(f"layers {spec.layers} outside 1..{n_layers}")
        self.n_layers = n_layers
        self.hidden_size = self.model.config.hidden_size
        # Without the log-prob the backbone can stop after the deepest captured layer: it is half the cost.
        self.stop_layer = n_layers if spec.logprob else max(spec.layers)
        self._captured: dict[int, torch.Tensor] = {}
        self._tail = self._closing_tokens()

    def _hooks(self) -> dict:
        """{layer: forward hook recording that layer's output}, attached only while features are extracted."""
        return {layer: self._hook(layer) for layer in self.spec.layers}

    def _hook(self, layer: int):
        def capture(_module, _inputs, output):
            self._captured[layer] = output[0] if isinstance(output, tuple) else output
        return capture

    def _ids(self, messages: list[dict], generation_prompt: bool) -> list[int]:
        out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    def _closing_tokens(self) -> int:
        """How many tokens the template adds after an assistant message's content (e.g. <|im_end|>, newline)."""
        from mo_explorer.models.loading import closing_tokens

        return closing_tokens(self.tokenizer)

    def tokenize(self, prompt: schema.Prompt, responses: Sequence[str]) -> tuple[list[int], list[list[int]], bool]:
        """Prompt ids (truncated) and each response's ids (truncated); False when the template is not prefix-stable."""
        messages = schema.as_messages(prompt)
        prompt_ids = self._ids(messages, True)
        pieces, consistent = [], True
        for response in responses:
            full = self._ids(messages + [{"role": "assistant", "content": response}], False)
            if full[: len(prompt_ids)] != prompt_ids:
                consistent = False
                pieces.append(full)
                continue
            pieces.append(full[len(prompt_ids):])
        if not consistent:
            return prompt_ids, pieces, False
        prompt_ids = prompt_ids[-self.spec.max_prompt_tokens:]
        limit, tail = self.spec.max_response_tokens, self._tail
        pieces = [p if len(p) <= limit else p[: limit - tail] + p[-tail:] for p in pieces]
        return prompt_ids, pieces, True

    @torch.no_grad()
    def _run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, cache=None):
        self._captured.clear()
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": True}
        if cache is not None:
            kwargs["past_key_values"] = cache
        if self.stop_layer < self.n_layers:
            out = self.model.model(**kwargs)  # hooks fire before the early exit below
            return None, out.past_key_values
        out = self.model(**kwargs)
        return (out.logits if self.spec.logprob else None), out.past_key_values

    def _states(self, index: torch.Tensor) -> np.ndarray:
        """(B, L, D) states at per-row positions from the captured layers."""
        rows = torch.arange(index.shape[0])
        return torch.stack([self._captured[layer][rows, index] for layer in self.spec.layers], dim=1).float().numpy()

    def encode(self, prompt: schema.Prompt, responses: Sequence[str]) -> GroupFeatures:
        """Features of n responses to one prompt, reusing the prompt's KV cache."""
        prompt_ids, pieces, consistent = self.tokenize(prompt, responses)
        if not consistent:
            log.warning("chat template is not prefix-consistent; falling back to one full pass per response")
            return self.encode_full(prompt, responses)
        with _truncated_depth(self.model, self.stop_layer, self._hooks()):
            p_ids = torch.tensor([prompt_ids], device=self.device)
            p_logits, p_cache = self._run(p_ids)
            prompt_states = self._states(torch.tensor([len(prompt_ids) - 1]))[0]
            n = len(pieces)
            states = np.zeros((n, len(self.spec.layers), self.hidden_size), np.float32)
            logprob = np.full(n, np.nan, np.float32)
            order = sorted(range(n), key=lambda i: len(pieces[i]))  # similar lengths share a batch: less padding
            for start in range(0, n, self.spec.batch_size):
                batch = order[start:start + self.spec.batch_size]
                s, lp = self._encode_batch(p_cache, p_logits, len(prompt_ids), [pieces[i] for i in batch])
                states[batch], logprob[batch] = s, lp
        return GroupFeatures(prompt_states, states, logprob, np.array([len(p) for p in pieces], np.int32))

    def _encode_batch(self, p_cache, p_logits, p_len: int, pieces: list[list[int]]):
        b, width = len(pieces), max(len(p) for p in pieces)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((b, width), pad, dtype=torch.long)
        mask = torch.zeros((b, p_len + width), dtype=torch.long)
        mask[:, :p_len] = 1
        for i, p in enumerate(pieces):  # right padding: positions of real tokens match a full pass
            ids[i, : len(p)] = torch.tensor(p)
            mask[i, p_len: p_len + len(p)] = 1
        cache = copy.deepcopy(p_cache)
        cache.batch_repeat_interleave(b)
        logits, _ = self._run(ids.to(self.device), mask.to(self.device), cache)
        lengths = torch.tensor([len(p) for p in pieces])
        states = self._states(lengths - 1)
        if logits is None:
            return states, np.full(b, np.nan, np.float32)
        # Token t of the response is predicted by the position before it: the prompt's last for t = 0.
        pred = torch.cat([p_logits[:, -1:].expand(b, 1, -1), logits[:, :-1]], dim=1).float()  # (B, T, V)
        token_lp = torch.gather(F.log_softmax(pred, dim=-1), 2, ids.to(pred.device).unsqueeze(-1))[..., 0]
        valid = (torch.arange(width)[None, :] < lengths[:, None]).to(token_lp.device)
        mean_lp = (token_lp * valid).sum(1) / valid.sum(1)
        return states, mean_lp.cpu().numpy().astype(np.float32)

    def encode_items(self, items: Sequence[tuple[schema.Prompt, str]]) -> list[GroupFeatures]:
        """Features of (prompt, response) items from many prompts, batched full passes: one GroupFeatures each.

        For bulk extraction (training, evaluation caches), where most prompts have one or two responses: a single
        causal pass over prompt + response gives the prompt's state (at its last token, which attends only to the
        prompt), the response's state and its log-prob, and batching texts of similar length across prompts keeps
        the CPU's matrix units busy. Equal to encode() up to float rounding.
        """
        out: list[GroupFeatures | None] = [None] * len(items)
        seqs: list[tuple[int, list[int], int]] = []  # (item index, token ids, prompt length)
        for i, (prompt, response) in enumerate(items):
            prompt_ids, pieces, consistent = self.tokenize(prompt, [response])
            if consistent:
                seqs.append((i, prompt_ids + pieces[0], len(prompt_ids)))
            else:
                out[i] = self.encode_full(prompt, [response])
        seqs.sort(key=lambda s: len(s[1]))
        with _truncated_depth(self.model, self.stop_layer, self._hooks()):
            for start in range(0, len(seqs), self.spec.batch_size):
                batch = seqs[start:start + self.spec.batch_size]
                for (i, _, _), feats in zip(batch, self._full_batch(batch)):
                    out[i] = feats
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def _full_batch(self, batch: list[tuple[int, list[int], int]]) -> list[GroupFeatures]:
        b, width = len(batch), max(len(ids) for _, ids, _ in batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((b, width), pad, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        for row, (_, seq, _) in enumerate(batch):  # right padding: real tokens sit where a lone pass puts them
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        self._captured.clear()
        # The base model without the LM head: logits are needed only at response positions (the head's vocab
        # projection is a fifth of SmolLM2's cost per token), and no KV cache is kept.
        hidden = self.model.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                  use_cache=False).last_hidden_state
        prompt_states = self._states(torch.tensor([p_len - 1 for _, _, p_len in batch]))
        states = self._states(torch.tensor([len(seq) - 1 for _, seq, _ in batch]))
        out = []
        for row, (_, seq, p_len) in enumerate(batch):
            logprob = np.nan
            if self.stop_layer == self.n_layers and self.spec.logprob:
                # Token t is predicted at position t - 1; the response starts at p_len.
                logits = self.model.lm_head(hidden[row, p_len - 1:len(seq) - 1])
                lp = F.log_softmax(logits.float(), dim=-1)
                target = torch.tensor(seq[p_len:], device=lp.device)[:, None]
                logprob = lp.gather(1, target).mean().item()
            out.append(GroupFeatures(prompt_states[row], states[row:row + 1], np.array([logprob], np.float32),
                                     np.array([len(seq) - p_len], np.int32)))
        return out

    def encode_full(self, prompt: schema.Prompt, responses: Sequence[str]) -> GroupFeatures:
        """Reference path: one full forward per (prompt, response), as in ArmoRM's model card."""
        prompt_ids, pieces, consistent = self.tokenize(prompt, responses)
        n = len(responses)
        states = np.zeros((n, len(self.spec.layers), self.hidden_size), np.float32)
        logprob = np.full(n, np.nan, np.float32)
        with _truncated_depth(self.model, self.stop_layer, self._hooks()):
            self._run(torch.tensor([prompt_ids], device=self.device))
            prompt_states = self._states(torch.tensor([len(prompt_ids) - 1]))[0]
            for i, piece in enumerate(pieces):
                full = prompt_ids + piece if consistent else piece
                logits, _ = self._run(torch.tensor([full], device=self.device))
                states[i] = self._states(torch.tensor([len(full) - 1]))[0]
                if logits is not None and consistent:
                    lp = F.log_softmax(logits[0, len(prompt_ids) - 1:-1].float(), dim=-1)
                    logprob[i] = lp.gather(1, torch.tensor(piece, device=lp.device)[:, None]).mean().item()
        return GroupFeatures(prompt_states, states, logprob, np.array([len(p) for p in pieces], np.int32))


class _truncated_depth:
    """Context manager running only the first `stop` decoder layers, with the capture hooks attached.

    Both are undone on exit: the model may be shared with the generator (models.loading), which must see it whole
    and unhooked.
    """

    def __init__(self, model, stop: int, hooks: dict):
        self.model, self.stop, self.hooks = model, stop, hooks

    def __enter__(self):
        self.layers = self.model.model.layers
        self.handles = [self.layers[layer - 1].register_forward_hook(hook) for layer, hook in self.hooks.items()]
        if self.stop < len(self.layers):
            self.model.model.layers = self.layers[: self.stop]
        return self

    def __exit__(self, *exc):
        self.model.model.layers = self.layers
        for handle in self.handles:
            handle.remove()
        return False


class MeanPoolFeatures:
    """Sentence-encoder features (all-MiniLM-L6-v2): mean pooling, 256 tokens, one layer (the last)."""

    max_tokens = 256

    def __init__(self, path: str, spec: FeatureSpec, device: str = "auto"):
        from transformers import AutoModel, AutoTokenizer

        self.spec = spec
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.hidden_size = self.model.config.hidden_size

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, D) mean-pooled token states, sorted into batches of similar length."""
        out = np.zeros((len(texts), self.hidden_size), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(texts), self.spec.batch_size):
            idx = order[start:start + self.spec.batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_tokens, return_tensors="pt").to(self.device)
            hidden = self.model(**enc).last_hidden_state  # (B, T, D)
            m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out[idx] = ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu().numpy()
        return out

    def encode(self, prompt: schema.Prompt, responses: Sequence[str]) -> GroupFeatures:
        """Features of n responses to one prompt (the prompt text is embedded once)."""
        if self.spec.layout == "budgeted":
            return self._encode_budgeted(prompt, responses)
        question = schema.prompt_text(prompt)
        emb = self.embed([question] + [f"{question}\n\n{r}" for r in responses])
        n_tok = [len(self.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses]
        return GroupFeatures(emb[0][None], emb[1:, None], np.full(len(responses), np.nan, np.float32),
                             np.array(n_tok, np.int32))

    def _encode_budgeted(self, prompt: schema.Prompt, responses: Sequence[str]) -> GroupFeatures:
        room = self.max_tokens - 2  # [CLS] ... [SEP]
        ids = self._token_ids
        users = [m["content"] for m in schema.as_messages(prompt) if m["role"] == "user"]
        request = ids("\n\n".join(users) if users else schema.prompt_text(prompt))[-room:]
        question = ids(schema.prompt_text(prompt))[-self.spec.max_prompt_tokens:]
        answers = [ids(r) for r in responses]
        cut = min(self.spec.max_response_tokens, room - len(question))
        emb = self.embed_ids([request] + [question + a[:cut] for a in answers])
        return GroupFeatures(emb[0][None], emb[1:, None], np.full(len(responses), np.nan, np.float32),
                             np.array([len(a) for a in answers], np.int32))

    def _token_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    @torch.no_grad()
    def embed_ids(self, pieces: Sequence[list[int]]) -> np.ndarray:
        """(n, D) mean-pooled states of token id lists (each wrapped in [CLS] ... [SEP]), batched by length."""
        tok = self.tokenizer
        out = np.zeros((len(pieces), self.hidden_size), np.float32)
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        for start in range(0, len(pieces), self.spec.batch_size):
            idx = order[start:start + self.spec.batch_size]
            rows = [[tok.cls_token_id, *pieces[i], tok.sep_token_id] for i in idx]
            width = max(map(len, rows))
            input_ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows], device=self.device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            out[idx] = ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu().numpy()
        return out

    encode_full = encode
