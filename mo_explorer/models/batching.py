"""Several visitors' rounds decoded in one batch: each row with its own prompt, sampling settings and seed.

Why: a decoding step of SmolLM2-135M costs about the same for 2 rows as for 8 on these cores (the int4 matmuls
read every weight once a step, whatever the rows), so a crowd's small rounds served one after another spend most of
their time re-reading weights. `python bench/batching.py` measured 16 visitors x (2 x 32) at 5.5 s to the slowest
visitor's first point one after another, and projected 2.8 s decoded together (2026-12-05, 2 cores).

`Batcher` collects the plain rounds that wait for the model thread and hands them over together; `decode_many`
decodes them: the prompts prefilled one by one (models.llama_step.LlamaStep.prefill_many), then one step for every
row of every round. A round's callbacks only ever see its own rows, and a callback that fails (its visitor left,
its scoring failed) ends that round alone: the others go on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from mo_explorer import model_thread
from mo_explorer.models.sampling import Finish, RowResult, Rows, Step, top_p_sample


@dataclass(eq=False)
class Group:
    """One round's rows in a shared batch (sampled: temperature > 0)."""

    prompt_ids: torch.Tensor  # (1, T)
    n: int
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    on_step: Step | None = None
    on_finish: Finish | None = None
    on_rows: Rows | None = None
    error: BaseException | None = None  # what ended it early: its rows left the batch there
    results: list[RowResult] = field(default_factory=list)

    def call(self, fn, *args) -> None:
        """Run one of this round's callbacks; an error ends this round, not the batch."""
        if fn is None or self.error is not None:
            return
        try:
            fn(*args)
        except Exception as exc:  # handed to the round's caller by whoever reads group.error
            self.error = exc


def _spans(owners: list[int]) -> list[tuple[int, int, int]]:
    """(group, first, end) of each run of batch rows that belong to one group (a group's rows stay together)."""
    spans, first = [], 0
    for b in range(1, len(owners) + 1):
        if b == len(owners) or owners[b] != owners[first]:
            spans.append((owners[first], first, b))
            first = b
    return spans


@torch.inference_mode()
def decode_many(forward, groups: list[Group], eos_ids: list[int]) -> None:
    """Decode every group's rows together; each group's results land in group.results, errors in group.error.

    forward: a stepper with prefill_many (models.llama_step.LlamaStep). Rows that emit EOS leave the batch, as do a
    group's rows at its own max_new_tokens (after the step that gives their log p(end of turn)) and a failed
    group's rows at once.
    """
    start = time.perf_counter()
    if any(g.temperature <= 0 for g in groups):
        raise ValueError("decode_many samples: greedy rounds decode alone")
    device = groups[0].prompt_ids.device
    rngs = [torch.Generator(device=device).manual_seed(int(g.seed)) for g in groups]
    for g in groups:
        g.results = [RowResult() for _ in range(g.n)]
    counts = torch.tensor([g.n for g in groups], device=device)
    logits = forward.prefill_many([g.prompt_ids for g in groups], [g.n for g in groups],
                                  max(g.max_new_tokens for g in groups)).float().repeat_interleave(counts, dim=0)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    owners = [gi for gi, g in enumerate(groups) for _ in range(g.n)]  # each batch row's group ...
    rows = [r for g in groups for r in range(g.n)]  # ... and its row in that group
    for step in range(max(g.max_new_tokens for g in groups)):
        logp = torch.log_softmax(logits, dim=-1)
        token = torch.empty(len(rows), dtype=torch.long, device=device)
        for gi, first, end in _spans(owners):
            token[first:end] = top_p_sample(logits[first:end], groups[gi].temperature, groups[gi].top_p, rngs[gi])
        chosen = logp.gather(1, token[:, None])[:, 0].tolist()
        eos_lp = torch.logsumexp(logp[:, eos], dim=-1).tolist()
        is_eos = torch.isin(token, eos).tolist()
        now = time.perf_counter() - start
        keep = []
        for b, (gi, row) in enumerate(zip(owners, rows)):
            g, result = groups[gi], groups[gi].results[row]
            result.end_logprobs.append(eos_lp[b])
            if is_eos[b]:
                result.finished_at = now
                g.call(g.on_finish, row, result)
            else:
                result.ids.append(int(token[b]))
                result.logprobs.append(chosen[b])
                keep.append(b)
        _report(groups, owners, rows, keep, step)
        keep = [b for b in keep if groups[owners[b]].error is None]
        if not keep:
            return
        owners, rows, token = _select(forward, owners, rows, token, keep)
        logits = forward(token).float()
        ending = [b for b, gi in enumerate(owners) if groups[gi].max_new_tokens == step + 1]
        if ending:  # cut by their round's budget: closed with log p(end of turn) after their last token
            end = torch.logsumexp(torch.log_softmax(logits[ending], dim=-1)[:, eos], dim=-1).tolist()
            for b, lp in zip(ending, end):
                g = groups[owners[b]]
                g.results[rows[b]].end_logprobs.append(lp)
                g.call(g.on_finish, rows[b], g.results[rows[b]])
            ended = set(ending)
            keep = [b for b in range(len(owners)) if b not in ended]
            if not keep:
                return
            owners, rows, _ = _select(forward, owners, rows, token, keep)
            logits = logits[keep]


def _report(groups: list[Group], owners: list[int], rows: list[int], keep: list[int], step: int) -> None:
    """After a step: each group still running hears its progress and sees its unfinished rows."""
    going: dict[int, list[int]] = {}
    for b in keep:
        going.setdefault(owners[b], []).append(rows[b])
    for gi in dict.fromkeys(owners):
        g = groups[gi]
        g.call(g.on_step, step + 1, g.max_new_tokens)
        g.call(g.on_rows, going.get(gi, []), g.results)


def _select(forward, owners: list[int], rows: list[int], token: torch.Tensor, keep: list[int]):
    """Keep these batch rows (cache included) when any left."""
    if len(keep) == len(owners):
        return owners, rows, token
    index = torch.tensor(keep, dtype=torch.long, device=token.device)
    forward.select(index)
    return [owners[b] for b in keep], [rows[b] for b in keep], token[index]


@dataclass(eq=False)
class Request:
    """A round waiting to be decoded with others: what Batcher hands its runner, and the future the caller waits on."""

    payload: object
    rows: int
    future: Future = field(default_factory=Future)


class Batcher:
    """Plain rounds that wait for the model thread are decoded together, up to max_rows rows a batch.

    Each submit queues one drain on the model thread; a drain takes every request waiting then (oldest first, as
    many as fit), so a round that arrives while another batch decodes joins the next batch, and a drain that
    finds nothing left returns at once. run(requests) runs on the model thread and settles every future.
    """

    def __init__(self, run: Callable[[list[Request]], None], max_rows: int):
        self.run = run
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._waiting: list[Request] = []

    def submit(self, payload, rows: int) -> Future:
        request = Request(payload, rows)
        with self._lock:
            self._waiting.append(request)
        model_thread.submit(self._drain)
        return request.future

    def _take(self) -> list[Request]:
        with self._lock:
            taken, rows = [], 0
            while self._waiting and (not taken or rows + self._waiting[0].rows <= self.max_rows):
                rows += self._waiting[0].rows
                taken.append(self._waiting.pop(0))
            return taken

    def _drain(self) -> None:
        taken = self._take()
        if not taken:
            return
        try:
            self.run(taken)
        except Exception as exc:  # the whole batch failed (the model): every round hears it
            for request in taken:
                if not request.future.done():
                    request.future.set_exception(exc)
