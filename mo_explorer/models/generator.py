"""Candidate generation: any transformers causal LM, all candidates of a round in one batched call.

Two samplers give the same distribution (temperature, then top-p):
- 'fast' (models.sampling): the prompt prefilled once for all rows, a top-p that never sorts the vocabulary,
  finished rows leave the batch, each row handed over the moment it ends (so it can be scored while the others are
  still written), and the log-probability the model gave every token it produced (the likelihood objective).
- 'transformers': `model.generate`, the reference path. Per-candidate wall time is measured by a stopping
  criterion that sees the token ids after every decoding step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from mo_explorer import errors, model_thread, schema
from mo_explorer.models import batching, embedded, llama_step, loading, sampling
from mo_explorer.models import device as devices

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Finished = Callable[[schema.Generation], None]  # called once per candidate, in the order they finish
Writing = Callable[[list[schema.Generation]], None]  # the unfinished rows as they read now (finished=False, row set)
# A steered round's guide (mo_explorer.steering.Guide): partial answers -> the row each continues; has block_tokens
Guide = Callable[[list[schema.Generation]], list[int]]
SAMPLERS = ("auto", "fast", "transformers")
# How often the rows being written are decoded and handed up: about 4 times a second is what a reader follows,
# and each hand-up costs the tokenizer, the page and the browser time on the cores the decoding runs on.
PARTIAL_EVERY_S = 0.25


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

    def __init__(self, model, tokenizer, model_id: str, device: torch.device, sampler: str = "auto",
                 weights: str = "", threads: int = 0, batch_rows: int = 0):
        if sampler not in SAMPLERS:
            raise errors.ModelError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.sampler = "fast" if sampler == "auto" else sampler
        self.threads = threads  # 0: decided per round from what other processes keep busy (device.OtherLoad)
        self._load = devices.OtherLoad()
        self.dtype = weights or str(next(model.parameters()).dtype).removeprefix("torch.")
        self.eos_ids = self._eos_ids()
        self.closing_tokens = loading.closing_tokens(tokenizer)  # template tokens after a reply (likelihood)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(self.eos_ids[0])
        self._step = None  # the fast sampler's decoding step, built on first use (models.llama_step)
        self.batch_rows = batch_rows  # most rows of waiting rounds decoded together; 0: each round alone
        self._lean = llama_step.supports(model)  # only the lean step takes several prompts at once
        self._batcher = batching.Batcher(self._decode_waiting, batch_rows)

    @classmethod
    def load(cls, name: str, cache_dir: str, device: str = "auto", dtype: str = "auto",
             sampler: str = "auto", threads: int = 0, batch_rows: int = 0) -> Generator:
        """Load a Hub id, a local directory or an embedded alias ('embedded:smollm2')."""
        try:
            torch_device = devices.resolve_device(device)
            torch_dtype, int4 = devices.resolve_weights(dtype, torch_device)
            path = embedded.resolve_model_path(name, cache_dir, bf16=torch_dtype == torch.bfloat16)
            source = embedded.resolve_model_path(name, cache_dir) if int4 else None  # float32 groups for int4
            start = time.perf_counter()
            tokenizer, model = loading.causal_lm(path, torch_device, torch_dtype, int4=int4, int4_source=source)
        except (OSError, ValueError, RuntimeError, ImportError, AssertionError) as exc:
            raise errors.ModelError(f"could not load generator {name!r}: {exc}") from exc
        weights = devices.INT4 if int4 else str(torch_dtype).removeprefix("torch.")
        log.info("loaded generator %s (%s, %s, sampler %s) in %.1f s", name, torch_device, weights, sampler,
                 time.perf_counter() - start)
        return cls(model, tokenizer, name, torch_device, sampler=sampler, weights=weights, threads=threads,
                   batch_rows=batch_rows)

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

    @property
    def streams_text(self) -> bool:
        """Whether generate hands up the rows' text while they are written (on_partial): the fast sampler does."""
        return self.sampler == "fast"

    @property
    def can_steer(self) -> bool:
        """Whether a round can be guided along a direction: the fast sampler branches rows, generate() cannot."""
        return self.sampler == "fast"

    def count_prompt_tokens(self, messages: schema.Prompt) -> int:
        """Number of prompt tokens after the chat template (with the assistant header)."""
        return int(self._encode(messages).shape[1])

    def batches(self, params: schema.GenerationParams, guide: Guide | None = None) -> bool:
        """Whether this round may be decoded together with other waiting rounds: a plain sampled round of the fast
        sampler on a lean decoding step (one that takes several prompts), with batching switched on."""
        return (self.batch_rows > 0 and guide is None and params.temperature > 0 and self.sampler == "fast"
                and self._lean)

    def generate(self, messages: schema.Prompt, params: schema.GenerationParams,
                 progress: Progress | None = None, on_finish: Finished | None = None,
                 guide: Guide | None = None, on_partial: Writing | None = None) -> list[schema.Generation]:
        """Sample params.n candidates in one batched call; same seed, same candidates (when decoded alone).

        Returns them in the order they finished (ties in row order); on_finish sees each one as it ends. With a
        guide (a steered round; needs can_steer), every guide.block_tokens tokens it ranks the unfinished rows.
        on_partial (needs streams_text) sees the unfinished rows' text at most every PARTIAL_EVERY_S seconds, from
        the first step at which one of them reads as more than blanks. Called off the model thread, a plain round
        waits there with the other rounds waiting and is decoded together with them (`batches`); its rows then
        see slightly different rounding, so a token can come out differently from the same seed alone.
        """
        if self.batches(params, guide) and not model_thread.on_model_thread():
            validate_params(params)
            request = (messages, self._encode(messages).to(self.device), params, progress, on_finish, on_partial)
            return self._batcher.submit(request, params.n).result()
        return self._generate_alone(messages, params, progress, on_finish, guide, on_partial)

    @model_thread.runs_on_model_thread
    def _generate_alone(self, messages: schema.Prompt, params: schema.GenerationParams,
                        progress: Progress | None = None, on_finish: Finished | None = None,
                        guide: Guide | None = None, on_partial: Writing | None = None) -> list[schema.Generation]:
        if guide is not None and not self.can_steer:
            raise errors.UserError(f"the {self.sampler!r} sampler cannot steer a round; use the 'fast' sampler")
        validate_params(params)
        prompt_ids = self._encode(messages).to(self.device)  # (1, T)
        if self.device.type == "cpu":
            threads = devices.threads_for_round(self.threads, self._load)
            log.info("round on %d thread(s) (%s)", threads,
                     f"set to {self.threads}" if self.threads else "the cores other processes leave idle")
        try:
            if self.sampler == "fast":
                generations = self._generate_fast(prompt_ids, params, progress, on_finish, guide, on_partial)
            else:
                generations = self._generate_transformers(prompt_ids, params, progress)
                for g in generations if on_finish is not None else ():
                    on_finish(g)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise errors.ModelError(f"generator {self.model_id!r} failed while generating: {exc}") from exc
        return generations

    def _generate_fast(self, prompt_ids: torch.Tensor, params: schema.GenerationParams,
                       progress: Progress | None, on_finish: Finished | None,
                       guide: Guide | None = None, on_partial: Writing | None = None) -> list[schema.Generation]:
        start = time.perf_counter()
        done, finished = self._collector(on_finish, start)

        def branch(indices: list[int], rows: list[sampling.RowResult], end_logprobs: list[float]) -> list[int]:
            # Partial answers as the guide reads them: what each row wrote so far, closed by its log p(end) now.
            now = time.perf_counter() - start
            partial = [self._row_generation(sampling.RowResult(r.ids, r.logprobs, [*r.end_logprobs, end], None),
                                            now, index) for index, r, end in zip(indices, rows, end_logprobs)]
            return guide(partial)

        greedy = params.temperature == 0
        step = self._stepper()
        sampling.decode(
            step, prompt_ids, params.n, params.max_new_tokens, float(params.temperature), float(params.top_p),
            self.eos_ids.tolist(), params.seed, on_step=progress, on_finish=finished,
            block=guide.block_tokens if guide is not None else 0, on_block=branch if guide is not None else None,
            on_rows=self._writer(on_partial, start) if on_partial is not None else None)
        if greedy and params.n > 1:  # greedy decoding gives n identical rows: one was decoded
            for _ in range(params.n - 1):
                done.append(done[0])
                if on_finish is not None:
                    on_finish(done[0])
        log.info("generated %d candidates x <=%d tokens in %.2f s (%s, fast sampler)", params.n,
                 params.max_new_tokens, time.perf_counter() - start, self.dtype)
        return done

    def _stepper(self):
        if self._step is None:
            self._step = llama_step.stepper(self.model)
            log.info("decoding step: %s", type(self._step).__name__)
        return self._step

    def _collector(self, on_finish: Finished | None, start: float):
        """(done, finished): finished(index, row) appends the row's candidate to done and hands it to on_finish."""
        done: list[schema.Generation] = []

        def finished(index: int, row: sampling.RowResult) -> None:
            done.append(self._row_generation(row, time.perf_counter() - start, index))
            if on_finish is not None:
                on_finish(done[-1])

        return done, finished

    def _decode_waiting(self, requests: list[batching.Request]) -> None:
        """The batcher's run, on the model thread: one waiting round alone, exactly as generate() decodes it;
        several together (models.batching.decode_many). Settles every request's future."""
        if len(requests) == 1:
            messages, _, params, progress, on_finish, on_partial = requests[0].payload
            try:
                requests[0].future.set_result(self._generate_alone(messages, params, progress, on_finish,
                                                                   None, on_partial))
            except Exception as exc:  # the caller reads it from the future
                requests[0].future.set_exception(exc)
            return
        if self.device.type == "cpu":
            devices.threads_for_round(self.threads, self._load)
        start = time.perf_counter()
        groups, collected = [], []
        for request in requests:
            _, prompt_ids, params, progress, on_finish, on_partial = request.payload
            done, finished = self._collector(on_finish, start)
            collected.append(done)
            groups.append(batching.Group(
                prompt_ids, params.n, params.max_new_tokens, float(params.temperature), float(params.top_p),
                params.seed, on_step=progress, on_finish=finished,
                on_rows=self._writer(on_partial, start) if on_partial is not None else None))
        try:
            batching.decode_many(self._stepper(), groups, self.eos_ids.tolist())
        except (RuntimeError, ValueError, IndexError) as exc:
            raise errors.ModelError(f"generator {self.model_id!r} failed while generating: {exc}") from exc
        for request, group, done in zip(requests, groups, collected):
            if group.error is not None:
                request.future.set_exception(group.error)
            else:
                request.future.set_result(done)
        log.info("generated %d rounds together (%d rows) in %.2f s (%s, fast sampler)", len(requests),
                 sum(g.n for g in groups), time.perf_counter() - start, self.dtype)

    def _row_generation(self, row: sampling.RowResult, total: float, index: int = -1) -> schema.Generation:
        text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
        return schema.Generation(text=text, n_tokens=len(row.ids), seconds=row.finished_at or total,
                                 finished=row.finished_at is not None, token_ids=tuple(row.ids),
                                 token_logprobs=tuple(row.logprobs),
                                 end_logprobs=tuple(row.end_logprobs), row=index)

    def _writer(self, on_partial: Writing, start: float) -> sampling.Rows:
        """The sampler's per-step hook: decode the unfinished rows and hand them up, throttled."""
        due = 0.0  # the first hand-up goes as soon as there are words: the page shows them within a second

        def rows(active: list[int], results: list[sampling.RowResult]) -> None:
            nonlocal due
            now = time.perf_counter()
            if now < due or not active:
                return
            # A byte-level token may stop inside a character: its half shows as U+FFFD until the next token.
            texts = [self.tokenizer.decode(results[i].ids, skip_special_tokens=True).rstrip("\ufffd")
                     for i in active]
            if not any(t.strip() for t in texts):
                return
            due = now + PARTIAL_EVERY_S
            on_partial([schema.Generation(text=t, n_tokens=len(results[i].ids), seconds=now - start, finished=False,
                                          row=i) for i, t in zip(active, texts)])

        return rows

    def _generate_transformers(self, prompt_ids: torch.Tensor, params: schema.GenerationParams,
                               progress: Progress | None) -> list[schema.Generation]:
        """The reference path: transformers' generate with its own top-p warper (token log-probs not kept)."""
        start = time.perf_counter()
        greedy = params.temperature == 0
        # Greedy decoding gives n identical rows: decode one and copy it.
        batch = 1 if greedy else params.n
        input_ids = prompt_ids.repeat(batch, 1)  # (B, T), same length: no padding needed
        recorder = _StepRecorder(batch, input_ids.shape[1], self.eos_ids, start, params.max_new_tokens, progress)
        sampling_args = {} if greedy else {"do_sample": True, "temperature": float(params.temperature),
                                           "top_p": float(params.top_p), "top_k": 0}
        # Seeding resets torch's global RNG: nothing else in the app relies on it, so it is not restored.
        torch.manual_seed(params.seed)
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                max_new_tokens=params.max_new_tokens, pad_token_id=self.pad_id,
                eos_token_id=self.eos_ids.tolist(), stopping_criteria=StoppingCriteriaList([recorder]),
                **({"do_sample": False} if greedy else sampling_args))
        total = time.perf_counter() - start
        generations = [self._to_generation(row, recorder.finished_at[i], total)
                       for i, row in enumerate(output[:, input_ids.shape[1]:].cpu())]
        log.info("generated %d candidates x <=%d tokens in %.2f s (%s, transformers sampler)", params.n,
                 params.max_new_tokens, total, self.dtype)
        generations = generations * params.n if greedy else generations
        return sorted(generations, key=lambda g: (not g.finished, g.seconds))

    def _to_generation(self, new_ids: torch.Tensor, finished_at: float | None, total: float) -> schema.Generation:
        """One row of new token ids (L,) -> text, token count (excluding EOS/padding) and time."""
        is_eos = torch.isin(new_ids, self.eos_ids)
        n_tokens = int(is_eos.int().argmax()) if bool(is_eos.any()) else int(new_ids.shape[0])
        text = self.tokenizer.decode(new_ids[:n_tokens], skip_special_tokens=True)
        if finished_at is None:
            return schema.Generation(text=text, n_tokens=n_tokens, seconds=total, finished=False)
        return schema.Generation(text=text, n_tokens=n_tokens, seconds=finished_at, finished=True)
