"""Shared fixtures: tiny models built once per test session under a temporary directory."""

from __future__ import annotations

import os
import secrets
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


@pytest.fixture(scope="session")
def openai_server(tmp_path_factory):
    """A real OpenAI-compatible server on loopback: `transformers serve` on the embedded SmolLM2, offline.

    Yields (base URL, model name). It answers one greedy choice per request whatever `n`, `temperature` or
    `logprobs` say, which is what the backend must cope with.
    """
    from mo_explorer import config
    from mo_explorer.models import embedded
    from tests import servers

    model_dir = embedded.smollm2_dir(config.Settings.from_env().models.cache_dir)
    proc, url = servers.start_transformers_serve(model_dir, tmp_path_factory.mktemp("serve"))
    yield url, str(model_dir)
    servers.stop(proc)


@pytest.fixture(scope="session")
def postgres_base():
    """A real PostgreSQL server (initdb in a temporary folder, run as a non-root user); its URL without a database."""
    from tests import servers

    if servers.postgres_bin() is None:
        if os.environ.get("CI", "").lower() == "true":  # as with Chromium: CI must run these, never skip them
            pytest.fail("CI=true but no PostgreSQL server binaries (apt-get install postgresql)")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install Debian's postgresql "
                    "package (.ci/run does) or put their folder on PATH")
    base, stop = servers.start_postgres()
    yield base
    stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh database URL: a SQLite file under tmp_path, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    from tests import servers

    base = request.getfixturevalue("postgres_base")
    return servers.create_database(base, "t_" + secrets.token_hex(8))


@pytest.fixture
def store(store_url):
    """A Store on store_url (SQLite and PostgreSQL), closed after the test."""
    from mo_explorer.storage.store import Store

    opened = Store(store_url)
    yield opened
    opened.close()
