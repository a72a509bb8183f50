"""The trunk command's frozen probe on the features `train` ships (MiniLM layer 6, budgeted, 256 tokens).

Run: python bench/trunk_probe256.py [trunk command arguments, e.g. --pairs ... --ratings ... --dev ...].
The same pairs, pair weights, length term and LOSO split as `python -m mo_explorer.training.trunk`, but the probe
reads the 256-token features from `train`'s feature cache instead of the trunk's 128 tokens; pairs whose texts that
cache lacks are skipped (it says how many). numpy only: it computes no feature. Numbers: bench/trunk.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mo_explorer import config  # noqa: E402  (run as a script: the repository root is put on sys.path)
from mo_explorer.training import data as D  # noqa: E402
from mo_explorer.training import trunk as TR  # noqa: E402
from mo_explorer.training.bt_probe import fit_probe  # noqa: E402
from mo_explorer.training.feature_cache import FeatureCache, text_key  # noqa: E402
from mo_explorer.training.train import feature_spec  # noqa: E402


def main(argv: list[str]) -> int:
    cfg = TR.TrunkRunConfig.from_args(TR.make_parser().parse_args(argv))
    pairs, dev = TR.sample_pairs(cfg)
    cache = FeatureCache(cfg.features or config.Settings.from_env().models.features_dir,
                         feature_spec("embedded:minilm", None))

    def ok(p: D.PairRow) -> bool:
        return text_key(p.prompt, p.chosen) in cache.responses and text_key(p.prompt, p.rejected) in cache.responses

    print(f"cached: {sum(map(ok, pairs))}/{len(pairs)} training pairs, {sum(map(ok, dev))}/{len(dev)} dev pairs")
    pairs, dev = [p for p in pairs if ok(p)], [p for p in dev if ok(p)]

    def feats(keys: list[str]) -> np.ndarray:
        return np.stack([cache.responses[k][0][0] for k in keys])  # (n, D): layer 6, the only layer cached

    def scores(train: list[D.PairRow], held: list[D.PairRow]) -> tuple[np.ndarray, np.ndarray]:
        (kc, kr), (hc, hr) = TR.keys(train), TR.keys(held)
        probe = fit_probe(feats(kc), feats(kr), TR.log_len_diff(train), TR.pair_weights(train),
                          [D.prompt_key(p.prompt) for p in train], seed=cfg.seed)
        return probe.score(feats(hc)), probe.score(feats(hr))

    def report(name: str, held: list[D.PairRow], sc: np.ndarray, sr: np.ndarray) -> dict:
        out = TR.summary(held, sc, sr)
        print(name, json.dumps(out))
        names = np.array([p.subset for p in held])
        for sub in sorted(set(names)) if len(set(names)) > 1 else []:
            sel = np.flatnonzero(names == sub)
            print("   ", sub, json.dumps(TR.summary([held[i] for i in sel], sc[sel], sr[sel])))
        return out

    folds = {s: report(s, held, *scores(train, held))
             for s in cfg.folds for train, held in [TR.split(pairs, s)] if held}
    bal = [f["balanced"] for f in folds.values()]
    print(f"LOSO length-balanced mean {np.mean(bal):.3f} worst {min(bal):.3f}")
    if dev:
        report("RM-Bench dev", dev, *scores(pairs, dev))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
