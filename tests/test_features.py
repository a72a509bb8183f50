"""Feature extraction: the prompt's KV cache reused for n responses equals one full pass per response."""

from __future__ import annotations

import numpy as np
import pytest

from mo_explorer.models.features import CausalLMFeatures, FeatureSpec

PROMPT = [{"role": "user", "content": "Write a short poem about the sea."}]
RESPONSES = ["The sea and the wind.", "Hello, how are you today? I am fine, thank you. " * 3, "Sure!"]


@pytest.mark.parametrize("logprob", [True, False])
def test_cached_prompt_equals_full_pass(tiny_lm_dir, logprob):
    layers = (1, 2) if logprob else (1,)  # without log-prob the backbone stops after layer 1
    spec = FeatureSpec(name=str(tiny_lm_dir), layers=layers, logprob=logprob, batch_size=2)
    ext = CausalLMFeatures(str(tiny_lm_dir), spec, device="cpu")
    cached = ext.encode(PROMPT, RESPONSES)
    full = ext.encode_full(PROMPT, RESPONSES)
    assert cached.response_states.shape == (3, len(layers), 16)
    np.testing.assert_allclose(cached.response_states, full.response_states, atol=1e-4)
    np.testing.assert_allclose(cached.prompt_states, full.prompt_states, atol=1e-5)
    if logprob:
        assert np.all(np.isfinite(cached.mean_logprob)) and np.all(cached.mean_logprob < 0)
        np.testing.assert_allclose(cached.mean_logprob, full.mean_logprob, atol=1e-4)
    else:
        assert np.all(np.isnan(cached.mean_logprob))
    # Different responses really give different features (the test could fail on a constant extractor).
    assert np.abs(cached.response_states[0] - cached.response_states[1]).max() > 1e-3


def test_truncation_keeps_closing_token(tiny_lm_dir):
    spec = FeatureSpec(name=str(tiny_lm_dir), layers=(2,), max_response_tokens=8, max_prompt_tokens=6)
    ext = CausalLMFeatures(str(tiny_lm_dir), spec, device="cpu")
    prompt_ids, pieces, ok = ext.tokenize(PROMPT, RESPONSES)
    assert ok and len(prompt_ids) == 6
    assert max(len(p) for p in pieces) == 8
    assert pieces[1][-1] == ext.tokenizer.apply_chat_template(
        PROMPT + [{"role": "assistant", "content": "x"}], tokenize=True)["input_ids"][-1]


def test_generator_and_extractor_share_one_model_left_whole(tiny_lm_dir):
    """One copy of the weights; extraction (early exit, hooks) leaves the shared model as the generator needs it."""
    from mo_explorer.models.generator import Generator
    from mo_explorer.schema import GenerationParams

    spec = FeatureSpec(name=str(tiny_lm_dir), layers=(1,), logprob=False)  # stops after layer 1 of 2
    ext = CausalLMFeatures(str(tiny_lm_dir), spec, device="cpu", dtype="float32")
    gen = Generator.load(str(tiny_lm_dir), cache_dir="unused", device="cpu", dtype="float32")
    assert gen.model is ext.model
    before = ext.encode(PROMPT, RESPONSES)
    params = GenerationParams(n=2, max_new_tokens=6, temperature=0.0, seed=3)
    first = [g.text for g in gen.generate(PROMPT, params)]
    again = ext.encode(PROMPT, RESPONSES)
    assert len(ext.model.model.layers) == 2 and not any(layer._forward_hooks for layer in ext.model.model.layers)
    assert [g.text for g in gen.generate(PROMPT, params)] == first
    np.testing.assert_allclose(again.response_states, before.response_states, atol=1e-6)


@pytest.mark.parametrize("logprob", [True, False])
def test_items_batched_across_prompts_equal_grouped_encoding(tiny_lm_dir, logprob):
    spec = FeatureSpec(name=str(tiny_lm_dir), layers=(1, 2) if logprob else (1,), logprob=logprob, batch_size=2)
    ext = CausalLMFeatures(str(tiny_lm_dir), spec, device="cpu")
    other = [{"role": "user", "content": "Name a colour."}]
    items = [(PROMPT, RESPONSES[0]), (other, "Blue."), (PROMPT, RESPONSES[1]), (other, "Red, obviously.")]
    got = ext.encode_items(items)
    for prompt in (PROMPT, other):
        responses = [r for p, r in items if p is prompt]
        want = ext.encode(prompt, responses)
        rows = [g for (p, _), g in zip(items, got) if p is prompt]
        for j, g in enumerate(rows):
            np.testing.assert_allclose(g.prompt_states, want.prompt_states, atol=1e-4)
            np.testing.assert_allclose(g.response_states[0], want.response_states[j], atol=1e-4)
            np.testing.assert_allclose(g.mean_logprob[0], want.mean_logprob[j], atol=1e-4, equal_nan=True)
            assert g.n_tokens[0] == want.n_tokens[j]
    assert np.abs(got[0].prompt_states - got[1].prompt_states).max() > 1e-3  # different prompts really differ
