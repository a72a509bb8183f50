"""How much style wins after length, per subset: a Bradley-Terry fit of "chosen beats rejected" on the log word-count
difference and the log markdown-marker difference of the two answers (bench/trunk.md, the length-matched trunk).

    python -m bench.style_terms ../shared/data/train/pairs.jsonl.gz ../shared/data/dev/rmbench.jsonl.gz
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict

import numpy as np

from mo_explorer.training import data as D

MARKER = re.compile(r"\s*(#{1,6}\s|[-*+]\s|\d+[.)]\s)")  # a heading or a list item at the start of a line


def markdown_markers(text: str) -> int:
    """Headings and list items (lines) plus bold spans."""
    return sum(1 for line in text.splitlines() if MARKER.match(line)) + text.count("**") // 2


def bradley_terry(x: np.ndarray, iters: int = 50) -> np.ndarray:
    """Weights w maximising sum log sigmoid(x w) over pairs (n, k) of chosen-minus-rejected terms (Newton)."""
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(x.shape[1])
        w += np.linalg.solve(hess, x.T @ (1 - p))
    return w


def main(paths: list[str]) -> None:
    print("| subset | pairs | length alone | length, with markdown | markdown, after length |")
    print("|---|---|---|---|---|")
    for path in paths:
        terms: dict[str, list] = defaultdict(list)
        for p in D.read_pairs(path):
            terms[p.subset].append((np.log1p(len(p.chosen.split())) - np.log1p(len(p.rejected.split())),
                                    np.log1p(markdown_markers(p.chosen)) - np.log1p(markdown_markers(p.rejected))))
        for subset, rows in sorted(terms.items()):
            x = np.array(rows)
            alone, both = bradley_terry(x[:, :1]), bradley_terry(x)
            print(f"| {subset} | {len(x)} | {alone[0]:+.2f} | {both[0]:+.2f} | {both[1]:+.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
