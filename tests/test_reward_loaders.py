"""Reward loaders: sequence-classification models, the official ArmoRM layout, and the registry's routing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mo_explorer import config, errors
from mo_explorer.models import official_armo, registry
from mo_explorer.models.armo import ArmoHead, HeadConfig
from mo_explorer.models.reward import RewardModel, SequenceClassificationRewardModel
from tests import tiny_models

PROMPT = "Write a short poem about the sea."
RESPONSES = ["The sea and the wind.", "Sure! Here is a detailed, helpful answer with several steps: first, second.",
             "I cannot help with that request, sorry.", "Hello"]


def assert_identity(out, atol=1e-5):
    expected = np.sum(out.gating[None, :] * (out.rewards @ out.transform), axis=1)
    np.testing.assert_allclose(out.score, expected, atol=atol)
    assert out.rewards.dtype == np.float32 and out.rewards.shape == (len(out.score), len(out.objectives))


# --- sequence classification -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier(tiny_classifier_dir) -> SequenceClassificationRewardModel:
    return SequenceClassificationRewardModel.load(str(tiny_classifier_dir), cache_dir="unused", device="cpu")


def test_classifier_objectives_from_id2label_and_uniform_gate(classifier):
    out = classifier.score(PROMPT, RESPONSES)
    assert isinstance(classifier, RewardModel)
    assert out.objectives == ("helpful", "safe", "concise") == classifier.objectives
    np.testing.assert_allclose(out.gating, np.full(3, 1 / 3), rtol=1e-6)
    np.testing.assert_array_equal(out.transform, np.eye(3))
    assert_identity(out)
    assert np.ptp(out.rewards[:, 0]) > 0  # different responses, different rewards


def test_classifier_batch_equals_one_at_a_time(classifier):
    batched = classifier.score(PROMPT, RESPONSES)
    single = np.concatenate([classifier.score(PROMPT, [r]).rewards for r in RESPONSES])
    np.testing.assert_allclose(batched.rewards, single, atol=1e-5)


def test_classifier_reads_the_last_real_token(classifier):
    """The same rewards as the model's own unpadded forward pass, row by row."""
    rows = classifier._encode(PROMPT, RESPONSES)
    with torch.no_grad():
        direct = np.stack([classifier.model(input_ids=torch.tensor([r])).logits[0].numpy() for r in rows])
    np.testing.assert_allclose(classifier.score(PROMPT, RESPONSES).rewards, direct, atol=1e-5)


def test_classifier_empty_responses(classifier):
    out = classifier.score(PROMPT, [])
    assert out.rewards.shape == (0, 3) and out.score.shape == (0,)


# --- official ArmoRM layout --------------------------------------------------------------------------------------

def build_official_checkpoint(directory: Path, k: int = 19) -> dict[str, torch.Tensor]:
    """A tiny Llama saved with the official ArmoRM parameter names, in two shards with an index."""
    from transformers import LlamaConfig, LlamaModel

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_models.build_tokenizer(directory)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    backbone = {f"model.{name}": t for name, t in LlamaModel(cfg).state_dict().items()}
    head = ArmoHead(HeadConfig(objectives=[f"o{i}" for i in range(k)], hidden_size=16, gate_hidden=8))
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.5)
        head.gating.logit_scale.fill_(1.7)
        head.reward_transform_matrix.copy_(torch.eye(k) + 0.1 * torch.randn(k, k))  # verbosity-debias-like
    head_tensors = {name: t.clone() for name, t in head.state_dict().items()}
    shards = {"model-00001-of-00002.safetensors": backbone, "model-00002-of-00002.safetensors": head_tensors}
    for shard, tensors in shards.items():
        save_file({n: t.contiguous() for n, t in tensors.items()}, str(directory / shard), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {n: s for s, ts in shards.items() for n in ts}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    data = cfg.to_dict() | {"architectures": [official_armo.ARCHITECTURE], "num_objectives": k,
                            "gating_hidden_dim": 8, "gating_n_hidden": 3, "gating_temperature": 10,
                            "auto_map": {"AutoModelForSequenceClassification": "modeling_custom.X"}}
    (directory / "config.json").write_text(json.dumps(data))
    return backbone | head_tensors


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("armorm")
    return directory, build_official_checkpoint(directory)


@pytest.fixture(scope="module")
def armo(official_dir):
    return official_armo.OfficialArmoRewardModel.load(str(official_dir[0]), device="cpu")


def test_official_loading_gives_exactly_the_saved_tensors(armo, official_dir):
    saved = official_dir[1]
    for name, tensor in armo.head.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    for name, tensor in armo.backbone.state_dict().items():
        assert torch.equal(tensor, saved[f"model.{name}"]), name
    assert armo.objectives == official_armo.ARMORM_OBJECTIVES
    assert armo.head.gating.temperature == 10 and len(armo.head.gating.layers) == 4


def test_official_gating_pattern_comes_from_the_template(armo):
    expected = armo.tokenizer("<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    assert armo.pattern == expected
    ids = armo.encode([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                       {"role": "user", "content": PROMPT}], ["ok"])[0]
    start = official_armo.find_gating_position(ids, armo.pattern)
    prompt_text = armo.tokenizer.apply_chat_template([{"role": "user", "content": "hi"},
                                                      {"role": "assistant", "content": "yo"},
                                                      {"role": "user", "content": PROMPT}],
                                                     add_generation_prompt=True, tokenize=False)
    # The last header (before the final reply), not the one after the first turn.
    assert start == len(armo.tokenizer(prompt_text, add_special_tokens=False)["input_ids"]) - len(armo.pattern)
    with pytest.raises(errors.ModelError, match="assistant header"):
        official_armo.find_gating_position([1, 2, 3], armo.pattern)


def test_official_scores_match_an_unbatched_reference(armo):
    out = armo.score(PROMPT, RESPONSES)
    assert_identity(out)
    assert out.objectives == official_armo.ARMORM_OBJECTIVES and out.rewards.shape == (4, 19)
    assert np.all(out.gating >= 0) and out.gating.sum() == pytest.approx(1.7, rel=1e-5)
    for i, ids in enumerate(armo.encode(PROMPT, RESPONSES)):
        with torch.no_grad():
            hidden = armo.backbone(input_ids=torch.tensor([ids])).last_hidden_state[0]  # (T, D)
            gate_at = official_armo.find_gating_position(ids, armo.pattern)
            rewards, gating, score = armo.head(hidden[-1:], hidden[gate_at:gate_at + 1])
        np.testing.assert_allclose(out.rewards[i], rewards[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(out.gating, gating[0].numpy(), atol=1e-5)
        assert out.score[i] == pytest.approx(float(score[0]), abs=1e-5)


def test_official_generic_names_for_other_sizes(tmp_path):
    build_official_checkpoint(tmp_path, k=3)
    model = official_armo.OfficialArmoRewardModel.load(str(tmp_path), device="cpu")
    assert model.objectives == ("objective_0", "objective_1", "objective_2")
    assert model.score(PROMPT, []).rewards.shape == (0, 3)


# --- registry ----------------------------------------------------------------------------------------------------

def settings_for(reward_model: str) -> config.Settings:
    models = dataclasses.replace(config.ModelSettings(), reward_model=reward_model, device="cpu")
    return dataclasses.replace(config.Settings(), models=models)


def test_registry_routes_each_family(official_dir, tiny_classifier_dir, tmp_path):
    head_dir = tmp_path / "head"
    ArmoHead(HeadConfig(objectives=["a", "b"], hidden_size=4)).save(head_dir)
    assert registry.reward_family("embedded") == "embedded"
    assert registry.reward_family(str(head_dir)) == "head-dir"
    assert registry.reward_family("RLHFlow/ArmoRM-Llama3-8B-v0.1") == "official-armo"
    assert registry.reward_family(str(official_dir[0])) == "official-armo"
    assert registry.reward_family(str(tiny_classifier_dir)) == "sequence-classification"
    assert isinstance(registry.load_reward_model(settings_for(str(official_dir[0]))),
                      official_armo.OfficialArmoRewardModel)
    assert isinstance(registry.load_reward_model(settings_for(str(tiny_classifier_dir))),
                      SequenceClassificationRewardModel)


def test_registry_refuses_a_missing_embedded_head(tmp_path):
    with pytest.raises(errors.ModelError) as info:
        registry.load_reward_model(settings_for("embedded"), head_dir=tmp_path / "reward_head")
    message = str(info.value)
    assert message.startswith(f"No trained reward head at {tmp_path / 'reward_head'}. Train one with: ")
    assert "python -m mo_explorer train --ratings" in message and "train/ratings.jsonl.gz" in message
    assert not (tmp_path / "reward_head").exists()  # nothing written, no placeholder weights


def test_registry_default_message_names_data_reward_head(tmp_path, monkeypatch):
    missing = config.REPO_ROOT / "data" / "no_such_head"
    with pytest.raises(errors.ModelError, match=r"^No trained reward head at data/no_such_head\. Train one with: "
                                                 r"python -m mo_explorer train .* --out data/no_such_head$"):
        registry.load_reward_model(settings_for("embedded"), head_dir=missing)


def test_registry_loads_the_generator(tiny_lm_dir):
    models = dataclasses.replace(config.ModelSettings(), generator=str(tiny_lm_dir), device="cpu",
                                 generator_dtype="float32")
    gen = registry.load_generator(dataclasses.replace(config.Settings(), models=models))
    assert gen.model_id == str(tiny_lm_dir) and gen.dtype == "float32"
