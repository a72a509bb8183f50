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


# Which heavy packages each layer may load at import time (STYLE.md: only models/ touches torch and transformers,
# only storage/ SQLAlchemy, only ui/ gradio, only pareto.py pymoo; plotting builds plotly figures of the front).
LAYERS = {
    "mo_explorer.models": {"torch", "transformers"},
    "mo_explorer.storage": {"sqlalchemy"},
    "mo_explorer.pareto": {"pymoo"},
    "mo_explorer.plotting": {"pymoo", "plotly"},
    "mo_explorer.ui": {"gradio", "pymoo", "plotly"},
    "mo_explorer": set(),  # everything else: config, schema, ranking, validation, explorer, cli, training, ...
}


def layer_of(module: str) -> str:
    """The longest LAYERS prefix that names module's layer."""
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)


def every_module() -> list[str]:
    import pkgutil

    import mo_explorer

    return sorted(m.name for m in pkgutil.walk_packages(mo_explorer.__path__, "mo_explorer.")
                  if m.name != "mo_explorer.__main__")  # __main__ runs the CLI when imported


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_every_module_of_a_layer_loads_only_what_the_layer_may(layer):
    """All of a layer's modules imported together load no heavy package outside the layer's own."""
    modules = [m for m in every_module() if layer_of(m) == layer]
    assert modules
    assert loaded_after(*modules) <= LAYERS[layer]


def test_the_layers_cover_every_module_and_the_rule_can_fail():
    modules = every_module()
    assert len(modules) > 40 and all(layer_of(m) in LAYERS for m in modules)
    assert "torch" in loaded_after("mo_explorer.models.generator")  # a heavy import is seen where it happens
