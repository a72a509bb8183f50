"""Nucleus sampling without sorting the vocabulary, and a decoding loop that shares one prompt prefill.

Why not `model.generate`: on a 2-core CPU a step of SmolLM2-135M for 8 rows cost 78 ms, of which 20 ms went to
top-p (a full sort of 49,152 logits per row) and 6.5 ms to a multinomial over the whole vocabulary (issue 12's
profile). `top_p_sample` finds the same nucleus with `torch.topk`, growing k until the kept mass reaches top-p, and
samples inside it. The loop also prefills the prompt once for all rows, drops finished rows from the batch, and
records the log-probability the model gave each token it produced (the likelihood objective, for free).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

FIRST_K = 64  # the nucleus of a 0.95 top-p is larger than 50 tokens in ~10% of steps: start a little above


def nucleus_mask(probs_desc: torch.Tensor, top_p: float) -> torch.Tensor:
    """Which of the descending probabilities (B, K) transformers' TopPLogitsWarper keeps.

    It removes a token when the mass of the tokens at or below it (ascending cumsum) is <= 1 - top_p; in descending
    order that keeps a token when the mass strictly above it is < top_p. At least one token is always kept.
    """
    above = torch.cumsum(probs_desc, dim=-1) - probs_desc  # (B, K) mass strictly above each token
    keep = above < top_p
    keep[:, 0] = True
    return keep


def top_p_sample(logits: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator) -> torch.Tensor:
    """One token per row (B,) from softmax(logits / temperature) restricted to its top-p nucleus.

    logits (B, V) float32. Equal in distribution to transformers' temperature + top-p warpers (top_k=0) followed by
    multinomial sampling, without sorting V: top-k with k doubled until every row's top-k mass reaches top_p.
    """
    probs = torch.softmax(logits / temperature, dim=-1)  # (B, V)
    if top_p >= 1.0:  # transformers skips the warper: the whole vocabulary
        return torch.multinomial(probs, 1, generator=rng)[:, 0]
    vocab = probs.shape[-1]
    k = min(FIRST_K, vocab)
    top, idx = torch.topk(probs, k, dim=-1)  # (B, k) descending
    # Every token outside the top-k has at least the top-k's mass above it: once that reaches top_p, it is out.
    while k < vocab and not bool((top.sum(-1) >= top_p).all()):
        k = min(2 * k, vocab)
        top, idx = torch.topk(probs, k, dim=-1)
    weights = torch.where(nucleus_mask(top, top_p), top, torch.zeros_like(top))
    choice = torch.multinomial(weights, 1, generator=rng)  # (B, 1) position inside the top-k
    return idx.gather(1, choice)[:, 0]


@dataclass
class RowResult:
    """What one sampled row produced: token ids (EOS excluded), their log-probs, and when it ended."""

    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # log p(token | prefix) under the raw logits (T = 1)
    end_logprobs: list[float] = field(default_factory=list)  # log p(EOS) at every step, up to where the row ended
    finished_at: float | None = None  # seconds from the start of the call; None when cut by max_new_tokens


Step = Callable[[int, int], None]  # (tokens so far, max tokens)
Finish = Callable[[int, RowResult], None]  # (row, its result) as soon as a row ends
# At a block boundary: (the unfinished rows' original indices, their results, log p(end of turn) now for each) ->
# the batch row each continues
Block = Callable[[list[int], list[RowResult], list[float]], list[int]]
# After every step: (the original index of each unfinished row, every row's result so far), to show them being written
Rows = Callable[[list[int], list[RowResult]], None]


def _branch(forward, results: list[RowResult], active: list[int], sources: list[int], logits: torch.Tensor,
            ) -> torch.Tensor:
    """Batch row b continues batch row sources[b]: its cache row and its result so far are copied; new logits."""
    if len(sources) != len(active) or not all(0 <= s < len(active) for s in sources):
        raise ValueError(f"a block's guide named rows {sources} for {len(active)} unfinished rows")
    if sources == list(range(len(active))):
        return logits
    copies = [RowResult(list(results[active[s]].ids), list(results[active[s]].logprobs),
                        list(results[active[s]].end_logprobs)) for s in sources]
    for row, copy in zip(active, copies):
        results[row] = copy
    index = torch.tensor(sources, dtype=torch.long, device=logits.device)
    forward.select(index)  # index_select: a repeated index duplicates that row's KV cache
    return logits[index]


@torch.inference_mode()
def decode(forward, prompt_ids: torch.Tensor, n: int, max_new_tokens: int, temperature: float, top_p: float,
           eos_ids: list[int], seed: int, on_step: Step | None = None, on_finish: Finish | None = None,
           block: int = 0, on_block: Block | None = None, on_rows: Rows | None = None) -> list[RowResult]:
    """Sample n continuations of prompt_ids (1, T); temperature 0 decodes one greedy row.

    forward: a models.llama_step stepper over the model. The prompt is run once and its KV cache repeated for the n
    rows; rows that emit an EOS token leave the batch. With on_block, every `block` tokens the unfinished rows are
    handed to it and each continues the row it names (a steered round: models.generator, mo_explorer.steering).
    on_rows sees the unfinished rows after every step (it must be cheap: it runs on the decoding thread).
    """
    start = time.perf_counter()
    greedy = temperature == 0
    rng = torch.Generator(device=prompt_ids.device).manual_seed(int(seed))
    rows = 1 if greedy else n
    logits = forward.prefill(prompt_ids, rows, max_new_tokens).float().expand(rows, -1)  # (B, V)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=prompt_ids.device)
    results = [RowResult() for _ in range(rows)]
    active = list(range(rows))  # original row index of each batch row
    for step in range(max_new_tokens):
        logp = torch.log_softmax(logits, dim=-1)  # (B, V) the model's own probabilities, for the likelihood
        token = logits.argmax(-1) if greedy else top_p_sample(logits, temperature, top_p, rng)  # (B,)
        chosen = logp.gather(1, token[:, None])[:, 0].tolist()
        eos_lp = torch.logsumexp(logp[:, eos], dim=-1).tolist()
        is_eos = torch.isin(token, eos).tolist()
        now = time.perf_counter() - start
        keep = []
        for b, row in enumerate(active):
            result = results[row]
            result.end_logprobs.append(eos_lp[b])
            if is_eos[b]:
                result.finished_at = now
                if on_finish is not None:
                    on_finish(row, result)
            else:
                result.ids.append(int(token[b]))
                result.logprobs.append(chosen[b])
                keep.append(b)
        if on_step is not None:
            on_step(step + 1, max_new_tokens)
        if on_rows is not None:
            on_rows([active[b] for b in keep], results)
        if len(keep) < len(active):
            index = torch.tensor(keep, dtype=torch.long, device=token.device)
            active = [active[b] for b in keep]
            if not active:
                break
            forward.select(index)
            token = token[index]
        logits = forward(token).float()
        if on_block is not None and block > 0 and (step + 1) % block == 0 and step + 1 < max_new_tokens:
            end = torch.logsumexp(torch.log_softmax(logits, dim=-1)[:, eos], dim=-1).tolist()
            sources = on_block(list(active), [results[r] for r in active], end)
            logits = _branch(forward, results, active, sources, logits)
        if step + 1 == max_new_tokens:
            # Rows cut here still get the log-prob of ending the turn after their last token: the likelihood
            # objective closes every response with the end-of-turn token, as a scoring pass would.
            end = torch.logsumexp(torch.log_softmax(logits, dim=-1)[:, eos], dim=-1).tolist()
            for b, row in enumerate(active):
                results[row].end_logprobs.append(end[b])
    for row in active:  # cut by max_new_tokens: they end now, unfinished
        if on_finish is not None:
            on_finish(row, results[row])
    return results
