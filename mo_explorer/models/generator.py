"""Candidate generation: any transformers causal LM, all candidates of a round in one batched call.

Per-candidate wall time is measured inside `model.generate` by a stopping criterion that sees the token
ids after every decoding step: the step at which a row first emits EOS is the moment that candidate
was done, even though the batch keeps decoding for the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from mo_explorer import errors, schema
from mo_explorer.models import device as devices
from mo_explorer.models import embedded, loading

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def validate_params(params: schema.GenerationParams) -> None:
    """Refuse sampling parameters no model can use (limits are the caller's job)."""
    if params.n < 1:
        raise errors.UserError(f"number of candidates must be at least 1 (got {params.n})")
    if params.max_new_tokens < 1:
        raise errors.UserError(f"max_new_tokens must be at least 1 (got {params.max_new_tokens})")
    if not params.temperature >= 0:  # also refuses NaN
        raise errors.UserError(f"temperature must be >= 0 (got {params.temperature})")
    if not 0 < params.top_p <= 1:
        raise errors.UserError(f"top_p must be in (0, 1] (got {params.top_p})")


class _StepRecorder(StoppingCriteria):
    """Never stops generation; records when each row first emits EOS and reports progress every step."""

    def __init__(self, batch: int, prompt_len: int, eos_ids: torch.Tensor, start: float, max_new_tokens: int,
                 progress: Progress | None):
        self.prompt_len = prompt_len
        self.eos_ids = eos_ids  # (E,)
        self.start = start
        self.max_new_tokens = max_new_tokens
        self.progress = progress
        self.finished_at: list[float | None] = [None] * batch

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        now = time.perf_counter() - self.start
        last = input_ids[:, -1]  # (B,) the token just appended
        hit = torch.isin(last, self.eos_ids.to(last.device)).tolist()
        for row, is_eos in enumerate(hit):
            # Finished rows keep receiving pad (often == EOS) tokens: only the first EOS counts.
            if is_eos and self.finished_at[row] is None:
                self.finished_at[row] = now
        if self.progress is not None:
            self.progress(input_ids.shape[1] - self.prompt_len, self.max_new_tokens)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class Generator:
    """A causal LM with its tokenizer that samples n candidates for a chat prompt."""

    def __init__(self, model, tokenizer, model_id: str, device: torch.device):
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self.eos_ids = self._eos_ids()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(self.eos_ids[0])

    @classmethod
    def load(cls, name: str, cache_dir: str, device: str = "auto", dtype: str = "auto") -> Generator:
        """Load a Hub id, a local directory or an embedded alias ('embedded:smollm2')."""
        try:
            torch_device = devices.resolve_device(device)
            torch_dtype = devices.resolve_dtype(dtype, torch_device)
            path = embedded.resolve_model_path(name, cache_dir)
            start = time.perf_counter()
            tokenizer, model = loading.causal_lm(path, torch_device, torch_dtype)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise errors.ModelError(f"could not load generator {name!r}: {exc}") from exc
        log.info("loaded generator %s (%s, %s) in %.1f s", name, torch_device, torch_dtype,
                 time.perf_counter() - start)
        return cls(model, tokenizer, name, torch_device)

    def _eos_ids(self) -> torch.Tensor:
        """Every token id that ends a turn: the generation config's EOS ids and the tokenizer's."""
        ids: set[int] = set()
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured is not None:
            ids.update(int(i) for i in configured)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        if not ids:
            raise errors.ModelError(f"generator {self.model_id!r} defines no EOS token")
        return torch.tensor(sorted(ids), dtype=torch.long)

    def _encode(self, messages: schema.Prompt) -> torch.Tensor:
        """Chat-formatted prompt ids (1, T), ending with the assistant header."""
        messages = schema.as_messages(messages)  # also accepts a plain string prompt
        if self.tokenizer.chat_template is None:
            # Base models have no template: plain text, one message per line, the model continues it.
            log.warning("generator %s has no chat template; using plain text", self.model_id)
            text = "\n".join(m["content"] for m in messages) + "\n"
            return self.tokenizer(text, return_tensors="pt")["input_ids"]
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True, return_tensors="pt")
        return encoded["input_ids"]

    def count_prompt_tokens(self, messages: schema.Prompt) -> int:
        """Number of prompt tokens after the chat template (with the assistant header)."""
        return int(self._encode(messages).shape[1])

    def generate(self, messages: schema.Prompt, params: schema.GenerationParams,
                 progress: Progress | None = None) -> list[schema.Generation]:
        """Sample params.n candidates in one batched call; same seed, same candidates.

        Seeding calls torch.manual_seed(params.seed), which resets torch's global RNG (and CUDA's):
        nothing else in the app relies on it, so it is not restored.
        """
        validate_params(params)
        start = time.perf_counter()
        prompt_ids = self._encode(messages)  # (1, T)
        greedy = params.temperature == 0
        # Greedy decoding gives n identical rows: decode one and copy it.
        batch = 1 if greedy else params.n
        input_ids = prompt_ids.repeat(batch, 1).to(self.device)  # (B, T), same length: no padding needed
        recorder = _StepRecorder(batch, input_ids.shape[1], self.eos_ids, start, params.max_new_tokens, progress)
        sampling = {} if greedy else {"do_sample": True, "temperature": float(params.temperature),
                                      "top_p": float(params.top_p), "top_k": 0}
        torch.manual_seed(params.seed)
        try:
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=params.max_new_tokens, pad_token_id=self.pad_id,
                    eos_token_id=self.eos_ids.tolist(), stopping_criteria=StoppingCriteriaList([recorder]),
                    **({"do_sample": False} if greedy else sampling))
        except (RuntimeError, ValueError, IndexError) as exc:
            raise errors.ModelError(f"generator {self.model_id!r} failed while generating: {exc}") from exc
        total = time.perf_counter() - start
        generations = [self._to_generation(row, recorder.finished_at[i], total)
                       for i, row in enumerate(output[:, input_ids.shape[1]:].cpu())]
        log.info("generated %d candidates x <=%d tokens in %.2f s", params.n, params.max_new_tokens, total)
        return generations * params.n if greedy else generations

    def _to_generation(self, new_ids: torch.Tensor, finished_at: float | None, total: float) -> schema.Generation:
        """One row of new token ids (L,) -> text, token count (excluding EOS/padding) and time."""
        is_eos = torch.isin(new_ids, self.eos_ids)
        n_tokens = int(is_eos.int().argmax()) if bool(is_eos.any()) else int(new_ids.shape[0])
        text = self.tokenizer.decode(new_ids[:n_tokens], skip_special_tokens=True)
        if finished_at is None:
            return schema.Generation(text=text, n_tokens=n_tokens, seconds=total, finished=False)
        return schema.Generation(text=text, n_tokens=n_tokens, seconds=finished_at, finished=True)
