"""Imports flow downward: the light layers must not pull in torch, transformers, gradio, pymoo or SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "gradio", "pymoo", "sqlalchemy", "plotly")


def loaded_after(*modules: str) -> set[str]:
    """Which HEAVY packages a fresh interpreter has loaded after importing `modules`."""
    code = (f"import sys\nfor m in {list(modules)!r}:\n    __import__(m)\n"
            f"print(__import__('json').dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["mo_explorer.schema", "mo_explorer.config", "mo_explorer.errors"])
def test_core_types_import_nothing_heavy(module):
    assert loaded_after(module) == set()


def test_storage_imports_only_sqlalchemy():
    assert loaded_after("mo_explorer.schema", "mo_explorer.config", "mo_explorer.storage") == {"sqlalchemy"}


def test_probe_sees_a_heavy_import():
    # Guards the probe itself: if it could not see imports, the tests above would pass vacuously.
    assert "sqlalchemy" in loaded_after("sqlalchemy.orm")
