"""A trunk directory's `quality` alone on all 7,182 RM-Bench dev pairs, per subset, raw and length-balanced (the
MiniLM side of bench/trunk.md's SmolLM2 comparison).

    python -m bench.trunk_rmbench data/reward_head
"""

from __future__ import annotations

import sys

import numpy as np

from mo_explorer import config
from mo_explorer.models import trunk as T
from mo_explorer.models.embedded import MINILM, resolve_model_path
from mo_explorer.training import data as D
from mo_explorer.training.metrics import length_balanced, pair_correct
from mo_explorer.training.sources import word_lengths

DEV = "../shared/data/dev/rmbench.jsonl.gz"


def subset_table(dev: list[D.PairRow], chosen: np.ndarray, rejected: np.ndarray) -> dict:
    """Print and return, per subset and over all pairs: n, raw accuracy and the length-balanced halves and mean."""
    out = {}
    for sub in sorted({p.subset for p in dev}) + ["all"]:
        sel = [i for i, p in enumerate(dev) if sub == "all" or p.subset == sub]
        correct = pair_correct(chosen[sel], rejected[sel])
        lb = length_balanced(correct, *word_lengths([dev[i] for i in sel]))
        out[sub] = {"n": len(sel), "raw": float(correct.mean()), "longer": lb["longer"], "shorter": lb["shorter"],
                    "balanced": lb["balanced"]}
        print(f"{sub} {len(sel)} raw {100 * correct.mean():.1f} LB {100 * lb['balanced']:.1f} "
              f"longer {100 * lb['longer']:.1f} shorter {100 * lb['shorter']:.1f}", flush=True)
    return out


def main(head_dir: str) -> None:
    tok, model = T.load_encoder(resolve_model_path(MINILM, config.Settings.from_env().models.cache_dir), 2)
    scorer = T.TrunkScorer.load(head_dir, tok, model)
    dev = D.read_pairs(DEV)
    by_prompt: dict[str, list[int]] = {}
    for i, p in enumerate(dev):
        by_prompt.setdefault(D.prompt_key(p.prompt), []).append(i)
    chosen, rejected = np.zeros(len(dev)), np.zeros(len(dev))
    for idx in by_prompt.values():  # each RM-Bench prompt has 6 answers in 9 pairs: score each answer once
        texts = sorted({t for i in idx for t in (dev[i].chosen, dev[i].rejected)})
        _, quality = scorer.encode(dev[idx[0]].prompt, texts)
        score = dict(zip(texts, quality))
        for i in idx:
            chosen[i], rejected[i] = score[dev[i].chosen], score[dev[i].rejected]
    subset_table(dev, chosen, rejected)


if __name__ == "__main__":
    main(sys.argv[1])
