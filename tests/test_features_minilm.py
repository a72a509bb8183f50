"""Sentence-encoder features (the MiniLM layouts) on a tiny BERT built here: what each layout lets the head read."""

from __future__ import annotations

import numpy as np
import pytest

from mo_explorer.models.features import FeatureSpec, MeanPoolFeatures
from tests.tiny_bert import save_tiny_bert

WORDS = ["what", "is", "the", "capital", "of", "france", "paris", "lyon", "word", "hello", "earlier", "question"]


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), [*"abcdefghijklmnopqrstuvwxyz?.,", *WORDS], 2)


def extractor(path, layout: str) -> MeanPoolFeatures:
    spec = FeatureSpec(name=str(path), layers=(6,), pooling="mean", logprob=False, max_prompt_tokens=64,
                       max_response_tokens=254, layout=layout)
    return MeanPoolFeatures(str(path), spec, device="cpu")


ANSWERS = ["paris is the capital.", "lyon, hello."]


def test_layouts_agree_on_a_short_question(tiny_bert_dir):
    prompt = [{"role": "user", "content": "what is the capital of france?"}]
    joined = extractor(tiny_bert_dir, "joined").encode(prompt, ANSWERS)
    budgeted = extractor(tiny_bert_dir, "budgeted").encode(prompt, ANSWERS)
    np.testing.assert_allclose(budgeted.response_states, joined.response_states, atol=1e-5)
    np.testing.assert_allclose(budgeted.prompt_states, joined.prompt_states, atol=1e-5)


def test_a_long_question_leaves_the_response_readable_only_in_the_budgeted_layout(tiny_bert_dir):
    prompt = [{"role": "user", "content": "word " * 400 + "what is the capital of france?"}]
    joined = extractor(tiny_bert_dir, "joined").encode(prompt, ANSWERS)
    budgeted = extractor(tiny_bert_dir, "budgeted").encode(prompt, ANSWERS)
    # joined: 256 tokens of question, the answers never reached: two different answers, one feature
    np.testing.assert_allclose(joined.response_states[0], joined.response_states[1], atol=1e-6)
    assert np.abs(budgeted.response_states[0] - budgeted.response_states[1]).max() > 1e-3
    assert list(budgeted.n_tokens) == list(joined.n_tokens)


def test_the_gate_reads_earlier_user_turns_in_the_budgeted_layout(tiny_bert_dir):
    def conversation(first: str):
        return [{"role": "user", "content": first}, {"role": "assistant", "content": "hello."},
                {"role": "user", "content": "what is the capital of france?"}]

    for layout, sees_earlier in (("joined", False), ("budgeted", True)):
        ex = extractor(tiny_bert_dir, layout)
        a = ex.encode(conversation("earlier question"), ANSWERS).prompt_states
        b = ex.encode(conversation("hello hello"), ANSWERS).prompt_states
        assert (np.abs(a - b).max() > 1e-3) == sees_earlier, layout


def test_spec_json_keeps_old_keys_for_the_joined_layout():
    old = {"name": "embedded:minilm", "layers": [6], "pooling": "mean", "logprob": False,
           "max_prompt_tokens": 256, "max_response_tokens": 384}
    assert FeatureSpec.from_json(old).to_json() == old  # the shipped caches and heads keep their keys
    new = FeatureSpec.from_json({**old, "layout": "budgeted"})
    assert new.layout == "budgeted" and new.to_json()["layout"] == "budgeted"
