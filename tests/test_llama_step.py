"""The lean Llama decoding step predicts exactly what transformers' forward predicts, and falls back elsewhere."""

from __future__ import annotations

import pytest
import torch

from mo_explorer.models import device, llama_step, onednn, sampling


def tiny_llama(**overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    settings = dict(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, tie_word_embeddings=False)  # two query heads per key/value head
    settings.update(overrides)
    return LlamaForCausalLM(LlamaConfig(**settings)).eval()


def teacher_forced(model, prompt: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token logits (steps, rows, V) of transformers' full forward over prompt + tokens, row by row."""
    rows = tokens.shape[1]
    full = torch.cat([prompt.expand(rows, -1), tokens.T], dim=1)  # (rows, T + steps)
    with torch.no_grad():
        logits = model(full).logits.float()
    return logits[:, prompt.shape[1] - 1:-1].transpose(0, 1)  # position t predicts token t + 1


def stepped(step, prompt: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out = [step.prefill(prompt, tokens.shape[1], tokens.shape[0]).float().expand(tokens.shape[1], -1)]
        out += [step(t).float() for t in tokens[:-1]]
    return torch.stack(out)


def mean_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    p, q = torch.log_softmax(p_logits.float(), -1), torch.log_softmax(q_logits.float(), -1)
    return float((p.exp() * (p - q)).sum(-1).mean())


def test_lean_step_predicts_what_transformers_predicts():
    model = tiny_llama()
    assert llama_step.supports(model)
    prompt = torch.tensor([[1, 5, 9, 13, 2, 7]])
    tokens = torch.randint(0, 64, (10, 3), generator=torch.Generator().manual_seed(3))  # 10 steps x 3 rows
    expected = teacher_forced(model, prompt, tokens)
    lean = stepped(llama_step.LlamaStep(model), prompt, tokens)
    torch.testing.assert_close(lean, expected, atol=1e-4, rtol=1e-4)
    # The model's own forward still reads the same weights (the step turned them into views of joined rows).
    torch.testing.assert_close(teacher_forced(model, prompt, tokens), expected)


def test_rows_that_leave_the_batch_take_their_cache_with_them():
    model = tiny_llama()
    prompt = torch.tensor([[3, 4, 5]])
    tokens = torch.randint(0, 64, (6, 3), generator=torch.Generator().manual_seed(4))
    expected = teacher_forced(model, prompt, tokens)
    step = llama_step.LlamaStep(model)
    with torch.inference_mode():
        step.prefill(prompt, 3, 6)
        for t in tokens[:3]:
            step(t)
        step.select(torch.tensor([0, 2]))  # row 1 ended
        last = step(tokens[3, [0, 2]]).float()
    torch.testing.assert_close(last, expected[4, [0, 2]], atol=1e-4, rtol=1e-4)


def test_same_samples_through_either_step():
    """The sampler draws the same tokens, with the same log-probs, through the lean step and transformers'."""
    model = tiny_llama()
    prompt = torch.tensor([[1, 2, 3, 4]])
    runs = [sampling.decode(step, prompt, 4, 12, 1.0, 0.9, [0], seed=7)
            for step in (llama_step.HFStep(model), llama_step.LlamaStep(model))]
    assert [r.ids for r in runs[0]] == [r.ids for r in runs[1]]
    for a, b in zip(*runs):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


@pytest.mark.parametrize("change", [{"attention_bias": True}, {"hidden_act": "gelu"},
                                    {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0,
                                                         "rope_theta": 10000.0}}])
def test_anything_else_decodes_through_transformers(change):
    model = tiny_llama(**change)
    assert not llama_step.supports(model)
    assert isinstance(llama_step.stepper(model), llama_step.HFStep)


def test_other_architectures_decode_through_transformers():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_embd=16, n_layer=1, n_head=2)).eval()
    assert isinstance(llama_step.stepper(model), llama_step.HFStep)
    results = sampling.decode(llama_step.stepper(model), torch.tensor([[1, 2]]), 2, 5, 1.0, 1.0, [0], seed=1)
    assert len(results) == 2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_weights_laid_out_once_give_the_same_numbers_for_any_number_of_rows(dtype):
    """oneDNN's prepacked layout (laid out for 8 rows) changes the speed, not the result, as rows leave: bf16 bit
    for bit; float32 to its rounding (F.linear takes another float32 GEMM whose sums run in another order)."""
    weight = torch.randn(1000, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    packed = onednn.packed(weight)
    if packed is None:
        pytest.skip("this torch has no oneDNN linear ops: the step uses F.linear")
    for rows in (8, 5, 1):
        x = torch.randn(rows, 64, generator=torch.Generator().manual_seed(rows)).to(dtype)
        exact = 0 if dtype == torch.bfloat16 else 1e-5
        torch.testing.assert_close(onednn.linear(x, weight, packed), torch.nn.functional.linear(x, weight),
                                   atol=exact, rtol=exact)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_lean_step_decodes_the_same_with_and_without_prepacked_weights(dtype, monkeypatch):
    model = tiny_llama(tie_word_embeddings=True).to(dtype)
    prompt = torch.tensor([[1, 5, 9, 13, 2, 7]])
    tokens = torch.randint(0, 64, (8, 3), generator=torch.Generator().manual_seed(6))
    packed = llama_step.LlamaStep(model)
    with_packing = stepped(packed, prompt, tokens)
    monkeypatch.setattr(onednn, "PREPACK", False)
    plain = llama_step.LlamaStep(model)
    assert plain.head_packed is None and plain.layers[0].qkv.packed is None
    if packed.head_packed is None:
        pytest.skip("this torch has no oneDNN linear ops: the step uses F.linear")
    assert packed.layers[0].qkv.packed is not None
    exact = 0 if dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(with_packing, stepped(plain, prompt, tokens), atol=exact, rtol=exact)


@pytest.mark.skipif(not device.cpu_supports_bf16(), reason="the int4 kernel needs native bf16 (it is never "
                    "chosen elsewhere)")
@pytest.mark.parametrize(("hidden", "joined_qkv"), [(128, True), (64, False)])  # k/v rows 64: joined; 32: not
def test_int4_lean_step_matches_transformers_on_the_same_weights(hidden, joined_qkv):
    """int4 projections joined into one matmul (where the packing allows) decode exactly as transformers does."""
    from mo_explorer.models.quantize import quantize_int4

    model = tiny_llama(hidden_size=hidden, intermediate_size=128).to(torch.bfloat16)
    model.config._attn_implementation = "eager"
    assert quantize_int4(model) == 2 * 7
    assert llama_step.supports(model)
    prompt = torch.tensor([[1, 5, 9, 13, 2, 7]])
    tokens = torch.randint(0, 64, (8, 2), generator=torch.Generator().manual_seed(5))
    before = teacher_forced(model, prompt, tokens)
    expected = stepped(llama_step.HFStep(model), prompt, tokens)  # bf16 rounds differently for 1 token than for 14
    step = llama_step.LlamaStep(model)
    assert all((not layer.qkv.parts) == joined_qkv and not layer.gate_up.parts for layer in step.layers)
    assert mean_kl(expected, stepped(step, prompt, tokens)) < 1e-4  # bf16 rounding of the attention weights only
    torch.testing.assert_close(teacher_forced(model, prompt, tokens), before, atol=0, rtol=0)  # views, same codes


@pytest.mark.model
def test_embedded_generator_decodes_through_the_lean_step_as_transformers_would():
    """The shipped SmolLM2 takes the lean step, with every projection joined, and along sampled answers predicts
    the next token as closely to the float32 model as transformers' own forward on the same weights does."""
    from mo_explorer import config
    from mo_explorer.models.generator import Generator

    cache = config.Settings.from_env().models.cache_dir
    generator = Generator.load("embedded:smollm2", cache_dir=cache)  # int4 on native-bf16 CPUs, else float32
    full = Generator.load("embedded:smollm2", cache_dir=cache, dtype="float32")
    step = llama_step.stepper(generator.model)
    assert isinstance(step, llama_step.LlamaStep)
    assert not any(layer.qkv.parts or layer.gate_up.parts for layer in step.layers)
    prompt = generator._encode([{"role": "user", "content": "Name a colour and a fruit."}])
    rows = sampling.decode(step, prompt, 4, 48, 0.8, 0.95, [], seed=3)  # no EOS: four rows of 48 tokens
    tokens = torch.tensor([r.ids for r in rows]).T  # (48, 4)
    truth = stepped(llama_step.HFStep(full.model), prompt, tokens)
    lean = stepped(step, prompt, tokens)
    reference = stepped(llama_step.HFStep(generator.model), prompt, tokens)
    # Measured: 0.0012-0.0013 nats for both in int4 (a wrong position or head costs more than 1 nat).
    assert mean_kl(truth, lean) <= 1.25 * mean_kl(truth, reference) + 1e-4
    assert (lean.argmax(-1) == truth.argmax(-1)).float().mean() >= 0.9
