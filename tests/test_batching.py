"""Several visitors' rounds decoded in one batch: each row reads its own prompt; one round's trouble stays its own."""

from __future__ import annotations

import threading

import pytest
import torch

from mo_explorer import model_thread
from mo_explorer.models import batching, llama_step, sampling
from tests.test_llama_step import teacher_forced, tiny_llama

PROMPTS = [torch.tensor([[1, 5, 9, 13, 2, 7]]), torch.tensor([[3, 4]]), torch.tensor([[8, 8, 30, 2]])]


def test_rows_of_different_prompts_predict_what_each_prompt_alone_predicts():
    """Three prompts of three lengths, 2 rows each, teacher-forced through one batch: every row's logits are
    transformers' logits for its own prompt (so the shorter prompts' empty slots are masked and their positions
    are their own)."""
    model = tiny_llama()
    step = llama_step.LlamaStep(model)
    tokens = torch.randint(0, 64, (8, 6), generator=torch.Generator().manual_seed(5))  # 8 steps x 6 rows
    with torch.inference_mode():
        first = step.prefill_many(PROMPTS, [2, 2, 2], tokens.shape[0]).float().repeat_interleave(2, dim=0)
        got = torch.stack([first] + [step(t).float() for t in tokens[:-1]])  # (steps, 6, V)
    for i, prompt in enumerate(PROMPTS):
        expected = teacher_forced(model, prompt, tokens[:, 2 * i:2 * i + 2])
        torch.testing.assert_close(got[:, 2 * i:2 * i + 2], expected, atol=1e-4, rtol=1e-4)


def test_a_round_decoded_beside_others_samples_what_it_samples_alone():
    """Same seed, same candidates: in float32 the batch changes no token of any round."""
    model = tiny_llama()
    settings = [(3, 10, 0.9, 0.95, 11), (2, 6, 1.2, 1.0, 12), (4, 8, 0.7, 0.8, 13)]
    alone = [sampling.decode(llama_step.LlamaStep(model), p, n, tokens, temp, top_p, [0], seed)
             for p, (n, tokens, temp, top_p, seed) in zip(PROMPTS, settings)]
    groups = [batching.Group(p, n, tokens, temp, top_p, seed) for p, (n, tokens, temp, top_p, seed)
              in zip(PROMPTS, settings)]
    batching.decode_many(llama_step.LlamaStep(model), groups, [0])
    for group, expected in zip(groups, alone):
        assert [r.ids for r in group.results] == [r.ids for r in expected]
        assert len(group.results[0].ids) <= group.max_new_tokens  # each round's own budget
        for got, want in zip(group.results, expected):
            torch.testing.assert_close(torch.tensor(got.end_logprobs), torch.tensor(want.end_logprobs))


def test_a_round_whose_visitor_left_ends_alone():
    """One round's callback fails mid-way (its stream closed): it ends there with its error; the others finish."""
    model = tiny_llama()
    finished: dict[int, list[int]] = {0: [], 1: []}

    def leave(step: int, total: int) -> None:
        if step == 3:
            raise RuntimeError("the visitor left")

    groups = [batching.Group(PROMPTS[0], 2, 12, 1.0, 1.0, 1, on_step=leave,
                             on_finish=lambda row, r: finished[0].append(row)),
              batching.Group(PROMPTS[1], 2, 12, 1.0, 1.0, 2, on_finish=lambda row, r: finished[1].append(row))]
    batching.decode_many(llama_step.LlamaStep(model), groups, [0])
    assert isinstance(groups[0].error, RuntimeError)
    assert groups[1].error is None and sorted(finished[1]) == [0, 1]
    assert all(len(r.ids) <= 3 for r in groups[0].results)


def test_rounds_that_wait_together_are_decoded_together():
    """While the model thread is busy, three rounds queue; they are handed over as one batch, oldest first, and a
    fourth that would pass max_rows waits for the next one."""
    release = threading.Event()
    batches: list[list[str]] = []

    def run(requests):
        batches.append([r.payload for r in requests])
        for r in requests:
            r.future.set_result(r.payload)

    batcher = batching.Batcher(run, max_rows=8)
    busy = model_thread.submit(release.wait)
    futures = [batcher.submit(name, rows) for name, rows in (("a", 2), ("b", 2), ("c", 4), ("d", 2))]
    release.set()
    busy.result()
    assert [f.result(timeout=10) for f in futures] == ["a", "b", "c", "d"]
    assert batches == [["a", "b", "c"], ["d"]]


def test_a_failed_batch_fails_each_of_its_rounds():
    def run(requests):
        raise RuntimeError("out of memory")

    batcher = batching.Batcher(run, max_rows=8)
    future = batcher.submit("a", 2)
    with pytest.raises(RuntimeError, match="out of memory"):
        future.result(timeout=10)


def test_two_visitors_who_ask_while_the_models_are_busy_get_their_own_rounds_decoded_together(
        tiny_lm_dir, tiny_classifier_dir, tmp_path, store_url, monkeypatch):
    from mo_explorer.schema import GenerationParams
    from tests.ui_support import tiny_explorer

    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, store_url, tmp_path / "cache")
    together: list[int] = []
    decode = batching.decode_many

    def recorded(forward, groups, eos_ids):
        together.append(len(groups))
        return decode(forward, groups, eos_ids)

    monkeypatch.setattr(batching, "decode_many", recorded)
    prompts = ["Name a colour", "Write a long story about a fox and a hen"]
    rounds: dict[str, object] = {}
    release = threading.Event()
    busy = model_thread.submit(release.wait)  # the models are busy with someone else's round
    visitors = [threading.Thread(target=lambda p=p, i=i: rounds.__setitem__(
        p, explorer.run_round(p, GenerationParams(n=3, max_new_tokens=8, seed=i)))) for i, p in enumerate(prompts)]
    for v in visitors:
        v.start()
    while len(explorer.generator._batcher._waiting) < 2:  # both rounds wait for the models
        threading.Event().wait(0.01)
    release.set()
    busy.result()
    for v in visitors:
        v.join(timeout=120)
    assert together == [2]
    for prompt in prompts:
        stored = explorer.get_round(rounds[prompt].round_id, rounds[prompt].session_id)
        assert stored.prompt[-1]["content"] == prompt and stored.status == "complete" and len(stored.candidates) == 3
