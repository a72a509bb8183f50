"""Heads side by side on RM-Bench: one row per `python -m mo_explorer eval ... --out F.json`, the length-balanced
accuracy per subset, their worst and mean, with the left-out cells of each head beside them when given.

    python -m mo_explorer eval ../shared/data/dev/rmbench.jsonl.gz --rm HEAD_DIR --out /tmp/h.json   # all 7,182 pairs
    python -m bench.rmbench_table /tmp/h.json [--loso h=56.0,56.2,67.1,59.4] ...

With --loso (the four left-out sources' length-balanced cells from `train --validate loso` or `training.variants`)
worst and mean run over all eight columns, the selection rule of bench/trunk.md's thirteenth-session section.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SUBSETS = ("rmbench-chat", "rmbench-code", "rmbench-safety-refuse", "rmbench-safety-response")


def row(path: Path, loso: list[float]) -> tuple[str, list[float], float, float]:
    """(name, columns, length-balanced accuracy over every pair, raw accuracy) of one eval output."""
    d = json.loads(path.read_text())
    lb = d["length_balanced"]
    subsets = [100 * lb["subsets"][s]["balanced"] for s in SUBSETS]
    return path.stem, loso + subsets, 100 * lb["balanced"], 100 * d["accuracy"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.rmbench_table", description=__doc__.splitlines()[0])
    p.add_argument("evals", nargs="+", type=Path, help="JSON files written by `mo_explorer eval --out`.")
    p.add_argument("--loso", action="append", default=[], metavar="STEM=A,B,C,D",
                   help="Left-out cells of the eval file named STEM (rmb-help, rmb-harm, alpacaeval, ratings).")
    args = p.parse_args(argv)
    loso = {k: [float(x) for x in v.split(",")] for k, v in (item.split("=", 1) for item in args.loso)}
    rows = [row(f, loso.get(f.stem, [])) for f in args.evals]
    head = ["rmb-help", "rmb-harm", "alpacaeval", "ratings"] if loso else []
    print("| head | " + " | ".join(head + [s.removeprefix("rmbench-") for s in SUBSETS])
          + " | worst | mean | RM-Bench LB (raw) |")
    print("|---" * (len(head) + len(SUBSETS) + 4) + "|")
    for name, cols, lb, raw in sorted(rows, key=lambda r: (min(r[1]), sum(r[1]) / len(r[1])), reverse=True):
        cells = " | ".join(f"{c:.1f}" for c in cols)
        print(f"| {name} | {cells} | **{min(cols):.1f}** | {sum(cols) / len(cols):.2f} | {lb:.1f} ({raw:.1f}) |")


if __name__ == "__main__":
    main()
