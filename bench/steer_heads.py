"""The two heads bench/steer.py needs: the recipe fitted on two disjoint halves of the training data.

Run once: python bench/steer_heads.py [--out /tmp/steer_heads]. The ratings and pairs are split by prompt (every row
of a prompt on the same side), and `python -m mo_explorer train` fits the shipped recipe on each half: head A
guides the steered rounds, head B only judges them (guidance that games its own head shows up there).

Departures from the shipped recipe, for time on a shared 2-core CPU: `--likelihood-pairs 0` (the likelihood
objective's SmolLM2 features took 27 min more, MODEL_CARD.md; the bench's directions leave that objective out), and
the rows each fit samples scaled by --scale (default 0.5: each half samples half as many rows as the shipped fit
samples from the whole). Features go to a cache of their own under --out (seeded from the shared one, if any), so
the training that ships the app's head is never written to.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mo_explorer.config import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT.parent / "shared" / "data" / "train"
# The shipped recipe's flags (data/reward_head/MODEL_CARD.md), without --dev and with the likelihood left out.
PER_OBJECTIVE = {"helpfulness": 600, "overall": 1600, "harmlessness": 1000, "compliance": 1250}
RECIPE = ["--backbone", "embedded:minilm", "--per-prompt", "8", "--fact-pairs", "0", "--likelihood-pairs", "0",
          "--likelihood-contrastive", "0", "--verbosity-in-score", "--preference-l2", "0.0", "--gate-steps", "600",
          "--gate-layers", "2", "--gate-seeds", "5", "--gate-entropy", "0.05", "--gate-weighting", "subset",
          "--gate-early-stop", "--seed", "0"]


def sampled(scale: float) -> list[str]:
    """The recipe's row counts (per objective, pairs, contrastive, rating pairs) times scale."""
    per_objective = {k: round(v * scale) for k, v in PER_OBJECTIVE.items()}
    return ["--per-objective", json.dumps(per_objective), "--pairs-limit", str(round(3000 * scale)),
            "--contrastive", str(round(100 * scale)), "--rating-pairs", str(round(600 * scale))]


def half_of(prompt: object) -> str:
    """'a' or 'b', fixed by the prompt's text: every row of one prompt falls on the same side."""
    return "ab"[hashlib.sha256(str(prompt).encode()).digest()[0] % 2]


def split(name: str, out: Path) -> dict[str, int]:
    """Write out/{a,b}/name (gzipped JSON Lines); rows per half."""
    files = {h: gzip.open(out / h / name, "wt") for h in "ab"}
    counts = {"a": 0, "b": 0}
    with gzip.open(TRAIN / name, "rt") as source:
        for line in source:
            side = half_of(json.loads(line)["prompt"])
            files[side].write(line)
            counts[side] += 1
    for f in files.values():
        f.close()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/steer_heads")
    parser.add_argument("--scale", type=float, default=0.5, help="Rows sampled per fit, relative to the recipe's.")
    args = parser.parse_args()
    out = Path(args.out)
    for h in "ab":
        (out / h).mkdir(parents=True, exist_ok=True)
    counts = {name: split(name, out) for name in ("ratings.jsonl.gz", "pairs.jsonl.gz")}
    print(json.dumps({"rows": counts, "scale": args.scale}), flush=True)
    cache = out / "cache"
    shared = Path(Settings.from_env().models.cache_dir).expanduser()
    if not cache.exists() and (shared / "features").is_dir():
        shutil.copytree(shared / "features", cache / "features")  # texts already read need not be read again
    for h in "ba":  # the judging head first: without it the bench has no independent judge
        subprocess.run([sys.executable, "-m", "mo_explorer", "train", "--ratings", str(out / h / "ratings.jsonl.gz"),
                        "--pairs", str(out / h / "pairs.jsonl.gz"), "--out", str(out / f"head_{h}"),
                        "--cache-dir", str(cache), *RECIPE, *sampled(args.scale)], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
