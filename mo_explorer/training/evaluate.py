"""`python -m mo_explorer eval PAIRS`: pairwise accuracy per subset, per-objective agreement, calibration.

Reads our pairs format, RewardBench's (prompt as a string) and TRL's preference format. `--limit` takes a sample
stratified by subset with `--seed`. Responses to the same prompt are scored in one call (one prompt encoding).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from mo_explorer import config, schema
from mo_explorer.training import data as D
from mo_explorer.training.metrics import evaluate_pairs

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of the eval command."""
    parser.add_argument("pairs", help="Pairs file (.jsonl or .jsonl.gz): ours, RewardBench's or TRL's format.")
    parser.add_argument("--rm", default=None,
                        help="Reward model: a head directory, 'embedded' (the shipped head; default: the "
                             "--reward-model setting), "
                             "RLHFlow/ArmoRM-Llama3-8B-v0.1 or any sequence-classification reward model.")
    parser.add_argument("--limit", type=int, default=None, help="Evaluate a stratified sample of N pairs.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the stratified sample.")
    parser.add_argument("--out", default=None, help="Where to write RESULTS.json (default: print it to stdout).")
    parser.add_argument("--features", default=None,
                        help="Feature cache directory for head models, shared with train (default "
                             "<cache-dir>/features): features are computed in bulk, kept, and reused by the next "
                             "run on the same texts.")
    parser.add_argument("--no-feature-cache", action="store_true",
                        help="Score every pair live through the model, reading and writing no feature cache.")


def load_model(rm: str | None, settings: config.Settings):
    """A reward model by name or directory; the shipped head when rm is None or 'embedded'."""
    name = rm or "embedded"
    try:
        from mo_explorer.models.registry import load_reward_model
    except ImportError:  # registry not present: head directories still work
        from mo_explorer.models.head_reward import HeadRewardModel
        path = config.EMBEDDED_HEAD_DIR if name == "embedded" else Path(name)
        m = settings.models
        return HeadRewardModel.load(path, m.cache_dir, m.device, m.reward_dtype)
    return load_reward_model(dataclasses.replace(settings, models=dataclasses.replace(
        settings.models, reward_model=name)))


def attach_feature_cache(model, root: str) -> None:
    """Let a head model read features already in the on-disk cache (same spec, same texts)."""
    if not hasattr(model, "feature_cache"):
        return
    from mo_explorer.models.features import GroupFeatures
    from mo_explorer.training.feature_cache import FeatureCache

    caches: dict = {}

    def lookup(spec, prompt, responses):
        key = json.dumps(spec.to_json(), sort_keys=True)
        if key not in caches:
            caches[key] = FeatureCache(root, spec.to_json())
        cache = caches[key]
        msgs = schema.as_messages(prompt)
        if not all(cache.has(msgs, r) for r in responses):
            return None
        p, r, lp, nt = cache.arrays([msgs] * len(responses), list(responses))
        return GroupFeatures(p[0], r, lp, nt)

    model.feature_cache = lookup


def fill_feature_caches(model, groups: dict[str, tuple[list[dict], list[str]]], root: str) -> None:
    """Compute every feature a head model needs for these groups into the on-disk cache (bulk, resumable)."""
    from mo_explorer.training.feature_cache import FeatureCache

    extractors = [getattr(model, "extractor", None), getattr(model, "likelihood_extractor", None)]
    for extractor in {id(e): e for e in extractors if e is not None}.values():
        cache = FeatureCache(root, extractor.spec.to_json())
        cache.fill(groups, extractor.encode, encode_items=getattr(extractor, "encode_items", None))


def evaluate_file(path: str, rm: str | None, settings: config.Settings, limit: int | None = None, seed: int = 0,
                  features: str | None = None, progress: bool = True) -> dict:
    """Score a pairs file with a reward model and return the metrics dict written to RESULTS.json."""
    from tqdm.auto import tqdm

    pairs = D.read_pairs(path)
    idx = D.stratified_sample([p.subset for p in pairs], limit, seed)
    pairs = [pairs[i] for i in idx]
    model = load_model(rm, settings)
    groups: dict[str, tuple[list[dict], list[str]]] = {}
    for p in pairs:
        g = groups.setdefault(D.prompt_key(p.prompt), (p.prompt, []))[1]
        g.extend(r for r in (p.chosen, p.rejected) if r not in g)
    if features and hasattr(model, "feature_cache"):
        fill_feature_caches(model, groups, features)
        attach_feature_cache(model, features)
    score, rewards = {}, {}
    start = time.perf_counter()
    for key, (prompt, responses) in tqdm(groups.items(), desc="scoring", unit="prompt", disable=not progress):
        out = model.score(prompt, responses)
        for i, r in enumerate(responses):
            score[(key, r)], rewards[(key, r)] = float(out.score[i]), out.rewards[i]
    elapsed = time.perf_counter() - start
    keys_c = [(D.prompt_key(p.prompt), p.chosen) for p in pairs]
    keys_r = [(D.prompt_key(p.prompt), p.rejected) for p in pairs]
    results = evaluate_pairs(
        [p.subset for p in pairs], np.array([score[k] for k in keys_c]), np.array([score[k] for k in keys_r]),
        styles=[(p.chosen_style, p.rejected_style) for p in pairs],
        rewards_chosen=np.stack([rewards[k] for k in keys_c]), rewards_rejected=np.stack([rewards[k] for k in keys_r]),
        objectives=model.objectives,
        lengths=(np.array([len(p.chosen.split()) for p in pairs]), np.array([len(p.rejected.split()) for p in pairs])))
    results.update({"model": getattr(model, "model_id", str(rm)), "file": str(path), "limit": limit, "seed": seed,
                    "seconds": elapsed, "responses_per_second": sum(len(g[1]) for g in groups.values()) / elapsed})
    return results


def main(args: argparse.Namespace, settings: config.Settings) -> int:
    """Evaluate and write RESULTS.json; logs the headline numbers."""
    features = None if args.no_feature_cache else (
        args.features or settings.models.features_dir)
    results = evaluate_file(args.pairs, args.rm or settings.models.reward_model, settings, args.limit, args.seed,
                            features)
    text = json.dumps(results, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    log.info("accuracy %.3f over %d pairs (%s)", results["accuracy"], results["n"],
             ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in results["subsets"].items()))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(prog="mo_explorer eval")
    configure(parser)
    sys.exit(main(parser.parse_args(), config.Settings.from_env()))
