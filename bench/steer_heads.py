"""The two heads bench/steer.py needs: the recipe fitted on two disjoint halves of the training data.

Run once: python bench/steer_heads.py [--out /tmp/steer_heads]. The ratings and pairs are split by prompt (every row
of a prompt on the same side), and `python -m mo_explorer train` fits the shipped recipe on each half: head A
guides the steered rounds, head B only judges them (guidance that games its own head shows up there).

Departures from the shipped recipe, for time on a shared 2-core CPU (where reading new texts ran at 0.3-4 texts/s):
`--likelihood-pairs 0` (the likelihood objective's SmolLM2 features took 27 min more, MODEL_CARD.md; the bench's
directions leave that objective out), and only rows whose MiniLM features are already in the shared feature cache
(those the shipped recipe's own runs read) are split, so no text is read again: each half is then half of the
rows the whole-data recipe samples. Training writes to a copy of that cache under --out, never to the shared one.
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

import numpy as np  # noqa: E402

from mo_explorer.config import Settings  # noqa: E402
from mo_explorer.training import data as D  # noqa: E402
from mo_explorer.training.feature_cache import text_key  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT.parent / "shared" / "data" / "train"
SPEC_DIR = "embedded-minilm-"  # the feature cache folder of the recipe's backbone (FeatureCache's naming)
# The shipped recipe's flags (data/reward_head/MODEL_CARD.md), without --dev and with the likelihood left out.
PER_OBJECTIVE = {"helpfulness": 600, "overall": 1600, "harmlessness": 1000, "compliance": 1250}
RECIPE = ["--backbone", "embedded:minilm", "--per-prompt", "8", "--fact-pairs", "0", "--likelihood-pairs", "0",
          "--likelihood-contrastive", "0", "--no-verbosity-in-score", "--preference-l2", "0.0", "--gate-steps", "600",
          "--gate-layers", "2", "--gate-seeds", "5", "--gate-entropy", "0.2", "--gate-weighting", "subset",
          "--gate-early-stop", "--seed", "0"]


def sampled(scale: float) -> list[str]:
    """The recipe's row counts (per objective, pairs, contrastive, rating pairs) times scale."""
    per_objective = {k: round(v * scale) for k, v in PER_OBJECTIVE.items()}
    return ["--per-objective", json.dumps(per_objective), "--pairs-limit", str(round(3000 * scale)),
            "--contrastive", str(round(100 * scale)), "--rating-pairs", str(round(600 * scale))]


def half_of(prompt: object) -> str:
    """'a' or 'b', fixed by the prompt's text: every row of one prompt falls on the same side."""
    return "ab"[hashlib.sha256(str(prompt).encode()).digest()[0] % 2]


def cached_keys(features: Path) -> set[str]:
    """Every (prompt, response) key with the recipe backbone's features in a feature cache folder."""
    keys: set[str] = set()
    for shard in features.glob(f"{SPEC_DIR}*/shard-*.npz"):
        if not shard.name.endswith(".tmp.npz"):
            with np.load(shard) as z:
                keys.update(str(k) for k in z["r_keys"])
    return keys


def split(name: str, out: Path, keys: set[str] | None) -> dict[str, int]:
    """Write out/{a,b}/name (gzipped JSON Lines), only rows whose texts are all in keys (when given); rows per half."""
    path = TRAIN / name
    rows = D.read_pairs(path) if name.startswith("pairs") else D.read_ratings(path)
    raw = [obj for _, obj in D.iter_jsonl(path)]  # the same non-blank lines, in the same order
    files = {h: gzip.open(out / h / name, "wt") for h in "ab"}
    counts = {"a": 0, "b": 0}
    for row, obj in zip(rows, raw, strict=True):
        texts = [row.chosen, row.rejected] if name.startswith("pairs") else [row.response]
        if keys is not None and not all(text_key(row.prompt, t) in keys for t in texts):
            continue
        side = half_of(row.prompt)
        files[side].write(json.dumps(obj) + "\n")
        counts[side] += 1
    for f in files.values():
        f.close()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/steer_heads")
    parser.add_argument("--scale", type=float, default=1.0, help="Rows sampled per fit, relative to the recipe's.")
    parser.add_argument("--all-rows", action="store_true", help="Split every row, not only those already cached.")
    args = parser.parse_args()
    out = Path(args.out)
    for h in "ab":
        (out / h).mkdir(parents=True, exist_ok=True)
    shared = Path(Settings.from_env().models.cache_dir).expanduser() / "features"
    cache = out / "cache"
    for shard in shared.glob(f"{SPEC_DIR}*/shard-*.npz"):  # a copy: training may add shards, never to the shared cache
        target = cache / "features" / shard.parent.name / shard.name
        if not target.exists() and not shard.name.endswith(".tmp.npz"):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(shard, target)
    keys = None if args.all_rows else cached_keys(cache / "features")
    counts = {name: split(name, out, keys) for name in ("ratings.jsonl.gz", "pairs.jsonl.gz")}
    print(json.dumps({"rows": counts, "scale": args.scale, "cached_texts": None if keys is None else len(keys)}),
          flush=True)
    for h in "ba":  # the judging head first: without it the bench has no independent judge
        subprocess.run([sys.executable, "-m", "mo_explorer", "train", "--ratings", str(out / h / "ratings.jsonl.gz"),
                        "--pairs", str(out / h / "pairs.jsonl.gz"), "--out", str(out / f"head_{h}"),
                        "--cache-dir", str(cache), *RECIPE, *sampled(args.scale)], cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
