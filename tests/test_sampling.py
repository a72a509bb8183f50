"""The fast sampler: the same nucleus as transformers' top-p, the model's own log-probs, int4 weights, threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from mo_explorer import schema
from mo_explorer.models import device, sampling
from mo_explorer.models.generator import Generator

MESSAGES = [{"role": "user", "content": "Hello, how are you today?"}]


def reference_keep_set(logits: torch.Tensor, temperature: float, top_p: float) -> list[set[int]]:
    """The token ids transformers' warpers leave finite, row by row."""
    warped = TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, logits.clone()))
    return [set(torch.nonzero(torch.isfinite(row)).flatten().tolist()) for row in warped]


def our_keep_set(logits: torch.Tensor, temperature: float, top_p: float) -> list[set[int]]:
    """The token ids top_p_sample can draw, row by row (its top-k under the nucleus mask)."""
    probs = torch.softmax(logits / temperature, dim=-1)
    top, idx = torch.topk(probs, probs.shape[-1], dim=-1)
    keep = sampling.nucleus_mask(top, top_p)
    return [set(idx[r][keep[r]].tolist()) for r in range(len(idx))]


@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0, 12.0])  # flat (nucleus of thousands) to peaked (a few tokens)
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95])
def test_nucleus_is_the_one_transformers_keeps(scale, top_p):
    gen = torch.Generator().manual_seed(int(scale * 100 + top_p * 10))
    logits = torch.randn(6, 4096, generator=gen) * scale
    assert our_keep_set(logits, 0.8, top_p) == reference_keep_set(logits, 0.8, top_p)


def test_samples_never_leave_the_nucleus_and_follow_its_probabilities():
    logits = torch.tensor([[4.0, 3.0, 2.5, 1.0, 0.0, -1.0] + [-8.0] * 200])
    keep = reference_keep_set(logits, 1.0, 0.9)[0]
    rng = torch.Generator().manual_seed(0)
    draws = torch.stack([sampling.top_p_sample(logits.expand(400, -1), 1.0, 0.9, rng) for _ in range(25)]).flatten()
    assert set(draws.tolist()) <= keep
    probs = torch.softmax(logits[0], -1)[sorted(keep)]
    expected = (probs / probs.sum()).numpy()
    observed = np.bincount(draws.numpy(), minlength=max(keep) + 1)[sorted(keep)] / len(draws)
    np.testing.assert_allclose(observed, expected, atol=0.02)  # 10,000 draws: 3 sigma is ~0.015


def test_whole_vocabulary_when_top_p_is_one():
    logits = torch.zeros(1, 1000)
    rng = torch.Generator().manual_seed(0)
    draws = sampling.top_p_sample(logits.expand(5000, -1), 1.0, 1.0, rng)
    assert len(set(draws.tolist())) > 900


@pytest.fixture(scope="module")
def generator(tiny_lm_dir) -> Generator:
    return Generator.load(str(tiny_lm_dir), cache_dir="unused", device="cpu", dtype="float32", sampler="fast")


def teacher_forced_logprobs(generator: Generator, ids: list[int], eos: int) -> tuple[list[float], float]:
    """log p of each produced token and of the end of turn after them, from one full forward pass."""
    prompt = generator._encode(MESSAGES)[0].tolist()
    full = torch.tensor([prompt + ids])
    with torch.no_grad():
        logp = torch.log_softmax(generator.model(full).logits[0].float(), -1)
    per_token = [float(logp[len(prompt) - 1 + t, tok]) for t, tok in enumerate(ids)]
    return per_token, float(logp[len(prompt) + len(ids) - 1, eos])


def test_token_logprobs_are_the_models_own(generator):
    """The log-probs kept while sampling equal a scoring pass over the produced tokens (the likelihood)."""
    eos = generator.tokenizer.eos_token_id
    out = generator.generate(MESSAGES, schema.GenerationParams(n=4, max_new_tokens=10, temperature=1.0, seed=5))
    for g in out:
        assert len(g.token_ids) == len(g.token_logprobs) == g.n_tokens and len(g.end_logprobs) == g.n_tokens + 1
        per_token, end = teacher_forced_logprobs(generator, list(g.token_ids), eos)
        np.testing.assert_allclose(g.token_logprobs, per_token, atol=1e-4)
        np.testing.assert_allclose(g.end_logprobs[-1], end, atol=1e-4)


def test_same_seed_same_candidates_and_finish_order(generator):
    params = schema.GenerationParams(n=5, max_new_tokens=12, temperature=0.9, top_p=0.9, seed=11)
    a = generator.generate(MESSAGES, params)
    b = generator.generate(MESSAGES, params)
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.seconds for g in a] == sorted(g.seconds for g in a)  # handed over in the order they ended


def test_fast_and_reference_samplers_share_greedy_output(tiny_lm_dir, generator):
    reference = Generator.load(str(tiny_lm_dir), cache_dir="unused", device="cpu", dtype="float32",
                               sampler="transformers")
    params = schema.GenerationParams(n=2, max_new_tokens=12, temperature=0.0)
    assert [g.text for g in generator.generate(MESSAGES, params)] == [
        g.text for g in reference.generate(MESSAGES, params)]


def test_generated_likelihood_matches_the_scoring_convention():
    """A response's mean log-prob: at most max - closing tokens, then the end of turn, the rest certain."""
    g = schema.Generation(text="abc", n_tokens=3, seconds=0.1, token_logprobs=(-1.0, -2.0, -3.0),
                          end_logprobs=(-9.0, -8.0, -7.0, -0.5))
    assert g.mean_logprob(128, 2) == pytest.approx((-1 - 2 - 3 - 0.5 + 0) / 5)
    assert g.mean_logprob(4, 2) == pytest.approx((-1 - 2 - 7.0 + 0) / 4)  # cut after 2 tokens, ends there
    assert schema.Generation(text="x", n_tokens=1, seconds=0.1).mean_logprob(128, 2) is None


def tiny_wide_lm(tmp_path) -> Path:
    """A Llama whose Linear inputs are multiples of 32, so every layer can hold int4 groups."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    # Weights that are exactly Q4_1 groups (w = d * q + m, q in 0..15 with both ends used), as the GGUF ships them.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                out_f, in_f = module.weight.shape
                q = torch.randint(0, 16, (out_f, in_f // 32, 32))
                q[..., 0], q[..., 1] = 0, 15
                d = torch.rand(out_f, in_f // 32, 1) * 0.02 + 0.005
                m = -torch.rand(out_f, in_f // 32, 1) * 0.1
                module.weight.copy_((d * q + m).reshape(out_f, in_f))
    model.save_pretrained(tmp_path / "wide")
    return tmp_path / "wide"


def kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """Mean KL(p || q) of next-token distributions over all positions."""
    p = torch.log_softmax(p_logits.float(), -1)
    q = torch.log_softmax(q_logits.float(), -1)
    return float((p.exp() * (p - q)).sum(-1).mean())


@pytest.mark.skipif(not device.cpu_supports_bf16(), reason="the int4 kernel needs native bf16 (it is never "
                    "chosen elsewhere)")
def test_int4_weights_predict_like_the_full_precision_model(tmp_path):
    """Q4_1-shaped weights in int4 groups: next-token distributions as close to fp32 as plain bf16 is."""
    from transformers import LlamaForCausalLM

    from mo_explorer.models.quantize import SafetensorsWeights, quantize_int4

    path = tiny_wide_lm(tmp_path)
    ids = torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)(ids).logits
        model = LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="eager")
        dense = model(ids).logits
        weights = SafetensorsWeights(path / "model.safetensors")  # float32: the groups' exact scales
        assert quantize_int4(model, weights) == 2 * 7  # 7 Linear layers per decoder layer; the LM head stays bf16
        int4 = model(ids).logits
    assert kl(reference, int4) <= 2 * kl(reference, dense) + 1e-3, (kl(reference, int4), kl(reference, dense))
    agree = (int4.argmax(-1) == reference.argmax(-1)).float().mean()
    assert agree >= 0.9


def test_threads_follow_the_idle_cores():
    assert device.idle_cores(load=0.0, cores=2) == 2
    assert device.idle_cores(load=0.4, cores=2) == 2
    assert device.idle_cores(load=1.0, cores=2) == 1  # one core busy elsewhere: one thread
    assert device.idle_cores(load=7.5, cores=2) == 1
    assert device.idle_cores(load=2.0, cores=16) == 14


def test_safetensors_weights_read_the_files_tensors(tmp_path):
    from safetensors.torch import save_file

    from mo_explorer.models.quantize import SafetensorsWeights

    tensors = {"a.weight": torch.randn(3, 4), "b": torch.arange(6, dtype=torch.float32).reshape(2, 3),
               "c": torch.randn(5, dtype=torch.float32).to(torch.bfloat16)}
    save_file(tensors, tmp_path / "m.safetensors", metadata={"format": "pt"})
    weights = SafetensorsWeights(tmp_path / "m.safetensors")
    assert set(weights) == set(tensors) and "missing" not in weights
    for name, tensor in tensors.items():
        assert torch.equal(weights[name], tensor) and weights[name].dtype == tensor.dtype


def test_other_load_counts_other_processes_not_this_one():
    """A busy round of our own must not cost the next round its threads; another busy process must."""
    import subprocess
    import sys
    import time

    probe = device.OtherLoad()
    probe.cores_busy()
    time.sleep(0.6)
    quiet = probe.cores_busy()  # what the rest of the machine does anyway (a CI box is not always idle)
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # this process keeps a core busy: not someone else's load
        pass
    assert probe.cores_busy() < quiet + 0.6
    spin = "import time\nend = time.time() + 2.0\nwhile time.time() < end:\n    pass\n"
    other = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.3)
        probe.cores_busy()  # start the window once the other process spins
        time.sleep(1.0)
        busy = probe.cores_busy()
    finally:
        other.wait()
    assert busy >= quiet + 0.6
    assert device.idle_cores(1.0, cores=2) == 1  # one core kept busy elsewhere leaves this round one thread
