"""Shared fixtures: tiny models built once per test session under a temporary directory."""

from __future__ import annotations

import pytest

from tests import tiny_models


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """Directory of a tiny Llama causal LM + ChatML tokenizer, loadable with from_pretrained."""
    return tiny_models.build_causal_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory):
    """Directory of a tiny 3-label sequence-classification reward model."""
    return tiny_models.build_sequence_classifier(tmp_path_factory.mktemp("tiny_cls"))
