"""Generator: one batched sampling call on a tiny real Llama, and the embedded SmolLM2 when marked."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from mo_explorer import errors, schema
from mo_explorer.models.generator import Generator

MESSAGES = [{"role": "user", "content": "Hello, how are you today?"}]


@pytest.fixture(scope="module")
def generator(tiny_lm_dir) -> Generator:
    return Generator.load(str(tiny_lm_dir), cache_dir="unused", device="cpu", dtype="float32")


@pytest.fixture
def eager_stopper(tiny_lm_dir) -> Generator:
    """The tiny LM with a huge EOS output row, so most sampled rows stop within a few steps."""
    g = Generator.load(str(tiny_lm_dir), cache_dir="unused", device="cpu", dtype="float32")
    eos = g.tokenizer.eos_token_id
    with torch.no_grad():
        w = g.model.lm_head.weight
        w[eos] = 50.0 * w[eos] / w[eos].norm()
    return g


def test_batched_call_returns_n_candidates_with_token_counts(generator, tiny_lm_dir):
    out = generator.generate(MESSAGES, schema.GenerationParams(n=5, max_new_tokens=12, temperature=1.0, seed=3))
    assert len(out) == 5
    assert all(isinstance(g, schema.Generation) for g in out)
    assert all(0 <= g.n_tokens <= 12 for g in out)
    assert all(g.finished or g.n_tokens == 12 for g in out)
    assert generator.model_id == str(tiny_lm_dir) and generator.dtype == "float32"


def test_same_seed_same_candidates_other_seed_differs(generator):
    params = schema.GenerationParams(n=4, max_new_tokens=10, temperature=2.0, top_p=1.0, seed=11)
    first = [g.text for g in generator.generate(MESSAGES, params)]
    again = [g.text for g in generator.generate(MESSAGES, params)]
    other = [g.text for g in generator.generate(MESSAGES, schema.GenerationParams(
        n=4, max_new_tokens=10, temperature=2.0, top_p=1.0, seed=12))]
    assert first == again
    assert first != other
    assert len(set(first)) > 1  # rows of one batch are sampled independently


def test_temperature_zero_is_greedy_and_identical(generator):
    out = generator.generate(MESSAGES, schema.GenerationParams(n=3, max_new_tokens=6, temperature=0.0, seed=1))
    other_seed = generator.generate(MESSAGES, schema.GenerationParams(n=3, max_new_tokens=6, temperature=0.0,
                                                                      seed=2))
    assert len(out) == 3 and len({g.text for g in out}) == 1
    assert out[0].text == other_seed[0].text


def test_progress_called_every_step(generator):
    calls = []
    generator.generate(MESSAGES, schema.GenerationParams(n=2, max_new_tokens=7, temperature=1.0),
                       progress=lambda step, total: calls.append((step, total)))
    assert calls, "progress was never called"
    assert [s for s, _ in calls] == list(range(1, len(calls) + 1))
    assert all(total == 7 for _, total in calls)
    assert len(calls) <= 7


def test_finished_rows_time_at_most_total(eager_stopper):
    before = time.perf_counter()
    out = eager_stopper.generate(MESSAGES, schema.GenerationParams(n=8, max_new_tokens=30, temperature=1.0, seed=0))
    wall = time.perf_counter() - before
    finished = [g for g in out if g.finished]
    assert finished, "the biased model should stop some rows early"
    assert all(g.n_tokens < 30 for g in finished)
    assert all(0 < g.seconds <= wall for g in out)
    slowest = max(g.seconds for g in out)
    unfinished = [g for g in out if not g.finished]
    assert all(g.seconds == slowest for g in unfinished)
    # A row that stopped earlier (fewer tokens) cannot have finished later than one that stopped after it.
    by_tokens = sorted(finished, key=lambda g: g.n_tokens)
    assert all(a.seconds <= b.seconds for a, b in zip(by_tokens, by_tokens[1:]))
    assert all("<|im_end|>" not in g.text for g in out)


def test_count_prompt_tokens_matches_template(generator):
    text = generator.tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")
    assert generator.count_prompt_tokens(MESSAGES) == len(generator.tokenizer(text, add_special_tokens=False)
                                                          ["input_ids"])
    assert generator.count_prompt_tokens(MESSAGES[0]["content"]) == generator.count_prompt_tokens(MESSAGES)


@pytest.mark.parametrize("params", [
    schema.GenerationParams(n=0), schema.GenerationParams(max_new_tokens=0),
    schema.GenerationParams(temperature=-0.1), schema.GenerationParams(top_p=0.0),
    schema.GenerationParams(top_p=1.5), schema.GenerationParams(temperature=float("nan")),
])
def test_invalid_params_refused(generator, params):
    with pytest.raises(errors.UserError):
        generator.generate(MESSAGES, params)


def test_missing_model_is_a_model_error(tmp_path):
    with pytest.raises(errors.ModelError, match="could not load generator"):
        Generator.load(str(tmp_path / "nowhere"), cache_dir=str(tmp_path))


@pytest.mark.model
def test_embedded_smollm2_generates(tmp_path):
    cache = Path.home() / ".cache" / "mo-explorer"
    g = Generator.load("embedded:smollm2", cache_dir=str(cache if cache.is_dir() else tmp_path))
    out = g.generate([{"role": "user", "content": "Name a colour."}],
                     schema.GenerationParams(n=2, max_new_tokens=8, temperature=0.7, seed=0))
    assert g.model_id == "embedded:smollm2"
    assert len(out) == 2 and all(1 <= o.n_tokens <= 8 for o in out)
    assert all(o.text.strip() for o in out)


def test_a_failed_first_run_conversion_says_so_and_leaves_no_half_model(tmp_path):
    """The one-off GGUF conversion runs in a child process (to keep its float32 copy out of the app's memory); when
    the child fails the caller gets an error naming the step and the child's own message, and no directory that a
    later run could mistake for a converted model."""
    from mo_explorer.models import embedded

    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(RuntimeError, match=r"converting SmolLM2 \(convert\) failed(.|\n)*Error"):
        embedded.smollm2_dir(blocker)
    assert not embedded.converted(blocker / embedded.SMOLLM2_CACHE_NAME)
