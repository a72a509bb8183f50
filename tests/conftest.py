"""Shared fixtures: tiny models built once per test session under a temporary directory."""

from __future__ import annotations

from collections import Counter

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


GENERATED = pytest.StashKey[Counter]()


@pytest.fixture(scope="session")
def generated_inputs(request) -> Counter:
    """Inputs run by the property-based tests, per test; the terminal summary reports the total."""
    return request.config.stash.setdefault(GENERATED, Counter())


def pytest_terminal_summary(terminalreporter, config):
    counts = config.stash.get(GENERATED, Counter())
    tests = {name: n for name, n in counts.items() if isinstance(name, str)}
    if tests:
        accepted = {name: counts[(name, "accepted")] for name in tests}
        terminalreporter.write_line(
            f"property-based tests: {sum(tests.values())} generated inputs, {sum(accepted.values())} accepted and "
            "the rest refused with a message, 0 unhandled (else a test failed): "
            + ", ".join(f"{name} {n} ({accepted[name]} accepted)" for name, n in tests.items()))
