"""House rules of training/: imports flow one way (no module imports one that imports it back, even lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

import mo_explorer.training as training

PACKAGE = "mo_explorer.training"


def imports_of(path: Path) -> set[str]:
    """training modules a file imports anywhere (at the top or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:
                found |= {a.name for a in node.names}
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith(PACKAGE + ".")}
    return found


def test_training_modules_import_each_other_in_one_direction():
    root = Path(training.__file__).parent
    graph = {p.stem: imports_of(p) - {p.stem} for p in root.glob("*.py") if p.stem != "__init__"}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path + [node]))
        if state.get(node) == 2 or node not in graph:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        state[node] = 2

    for module in sorted(graph):
        visit(module, [])
    assert {"validate", "scoring", "sources"} <= set(graph)
    assert not {"train", "ablate"} & graph["validate"]  # the validation table never reaches back into training
