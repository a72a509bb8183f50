"""How much style wins after length, per subset: a Bradley-Terry fit of "chosen beats rejected" on the log word-count
difference and the log markdown-marker difference of the two answers (bench/trunk.md, the length-matched trunk).

    python -m bench.style_terms ../shared/data/train/pairs.jsonl.gz ../shared/data/dev/rmbench.jsonl.gz
"""

from __future__ import annotations

import sys
from collections import defaultdict

from mo_explorer.models.trunk import style_beta
from mo_explorer.training import data as D
from mo_explorer.training.style import style_diffs


def main(paths: list[str]) -> None:
    print("| subset | pairs | length alone | length, with markdown | markdown, after length |")
    print("|---|---|---|---|---|")
    for path in paths:
        by_subset: dict[str, list] = defaultdict(list)
        for p in D.read_pairs(path):
            by_subset[p.subset].append(p)
        for subset, pairs in sorted(by_subset.items()):
            x = style_diffs(pairs, ("markdown",))
            alone, both = style_beta(x[:, :1]), style_beta(x)
            print(f"| {subset} | {len(x)} | {alone[0]:+.2f} | {both[0]:+.2f} | {both[1]:+.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
