"""`python -m mo_explorer train`: features from a frozen backbone, ridge heads, debiasing, gate; writes a head dir.

Heavy imports (torch through mo_explorer.models) happen inside the functions that need them, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mo_explorer import config
from mo_explorer.errors import UserError
from mo_explorer.training import data as D
from mo_explorer.training import recipe
from mo_explorer.training.contrastive import build_contrastive
from mo_explorer.training.feature_cache import FeatureCache, text_key

log = logging.getLogger(__name__)

DEFAULT_PER_OBJECTIVE = {"helpfulness": 600, "overall": 400, "harmlessness": 300, "compliance": 300}


def likelihood_spec(name: str = "embedded:smollm2") -> dict:
    """FeatureSpec json of the likelihood model: full depth (log-prob), responses cut to 128 tokens for cost."""
    layers = [9, 15, 30] if name == "embedded:smollm2" else [1]
    return {"name": name, "layers": layers, "pooling": "last", "logprob": True,
            "max_prompt_tokens": 256, "max_response_tokens": 128}


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of the train command."""
    parser.add_argument("--ratings", required=True, help="Ratings file (our format or HelpSteer2's columns).")
    parser.add_argument("--pairs", required=True, help="Preference pairs (ours, RewardBench or TRL format).")
    parser.add_argument("--backbone", default="embedded:minilm",
                        help="Feature backbone: embedded:minilm, embedded:smollm2, a Hub id or a local path.")
    parser.add_argument("--layer", type=int, default=None, help="Decoder layer read by the heads (causal LMs).")
    parser.add_argument("--out", default=str(config.EMBEDDED_HEAD_DIR), help="Head directory to write.")
    parser.add_argument("--per-objective", default=json.dumps(DEFAULT_PER_OBJECTIVE),
                        help="JSON {objective: max rating rows} sampled for stage 1.")
    parser.add_argument("--pairs-limit", type=int, default=800, help="Pairs sampled (stratified by subset).")
    parser.add_argument("--contrastive", type=int, default=100,
                        help="Contrastive pairs per generator (0 disables them).")
    parser.add_argument("--likelihood-pairs", type=int, default=400,
                        help="Pairs also scored by SmolLM2's mean log-prob (0 drops the likelihood objective).")
    parser.add_argument("--likelihood-model", default="embedded:smollm2",
                        help="Causal LM whose mean token log-prob is the likelihood objective (the generator).")
    parser.add_argument("--verbosity-in-score", action="store_true",
                        help="Let the gate weight verbosity in the score (off: verbosity is shown, not rewarded).")
    parser.add_argument("--gate-steps", type=int, default=600, help="Gate optimisation steps.")
    parser.add_argument("--dev", default=None, help="Optional pairs file evaluated after training (model card).")
    parser.add_argument("--dev-limit", type=int, default=400, help="Stratified dev sample size.")
    parser.add_argument("--features", default=None,
                        help="Feature cache directory (default <cache-dir>/features); resumable.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every sample and of the gate.")


@dataclass
class Prepared:
    """Training rows with their features."""

    ratings: list[D.RatingRow]
    labels: dict[str, np.ndarray]
    rating_table: recipe.FeatureTable
    pairs: list[D.PairRow]
    chosen: recipe.FeatureTable
    rejected: recipe.FeatureTable
    spec: dict
    timings: dict = field(default_factory=dict)


def feature_spec(backbone: str, layer: int | None) -> dict:
    """The FeatureSpec json of a backbone choice."""
    if backbone in ("embedded:minilm",) or "minilm" in backbone.lower():
        return {"name": backbone, "layers": [6], "pooling": "mean", "logprob": False,
                "max_prompt_tokens": 256, "max_response_tokens": 256}
    if backbone == "embedded:smollm2" and (layer is None or layer in likelihood_spec()["layers"]):
        return likelihood_spec()  # one pass gives the states and the likelihood
    return {"name": backbone, "layers": [layer or 12], "pooling": "last", "logprob": False,
            "max_prompt_tokens": 256, "max_response_tokens": 384}


def fill(cache: FeatureCache, spec: dict, items: list[tuple[list[dict], str]], settings: config.Settings,
         state: dict) -> None:
    """Compute features of (prompt, response) items missing from the cache, loading the backbone once."""
    groups: dict[str, tuple[list[dict], list[str]]] = {}
    for p, r in items:
        if not cache.has(p, r):
            groups.setdefault(D.prompt_key(p), (p, []))[1].append(r)
    if not groups:
        return
    key = json.dumps(spec, sort_keys=True)
    if key not in state:
        from mo_explorer.models.features import FeatureSpec, load_extractor
        state[key] = load_extractor(FeatureSpec.from_json(spec), settings.models.cache_dir,
                                    settings.models.device, "float32")
    cache.fill(groups, state[key].encode)


def table(cache: FeatureCache, items: list[tuple[list[dict], str]], layer_index: int,
          lik: FeatureCache | None) -> recipe.FeatureTable:
    """FeatureTable of items from a filled cache (likelihood NaN where `lik` lacks the row)."""
    p, r, lp, _ = cache.arrays([i[0] for i in items], [i[1] for i in items])
    if lik is not None:
        lp = np.array([lik.responses[k][1] if k in lik.responses else np.nan
                       for k in (text_key(q, s) for q, s in items)], np.float32)
    words = np.array([len(s.split()) for _, s in items], np.float64)
    return recipe.FeatureTable(p[:, layer_index], r[:, layer_index], lp, words)


def prepare(args: argparse.Namespace, settings: config.Settings) -> Prepared:
    """Read and sample the data, build contrastive pairs, extract (or reuse) every feature needed."""
    start = time.perf_counter()
    ratings_all, pairs_all = D.read_ratings(args.ratings), D.read_pairs(args.pairs)
    per_obj = json.loads(args.per_objective)
    ratings = [ratings_all[i] for i in D.sample_ratings(ratings_all, per_obj, args.seed)]
    pairs = [pairs_all[i] for i in D.stratified_sample([p.subset for p in pairs_all], args.pairs_limit, args.seed)]
    spec = feature_spec(args.backbone, args.layer)
    root = args.features or str(Path(settings.models.cache_dir).expanduser() / "features")
    cache, state = FeatureCache(root, spec), {}
    items = [(r.prompt, r.response) for r in ratings] + [(p.prompt, t) for p in pairs for t in (p.chosen, p.rejected)]
    fill(cache, spec, items, settings, state)
    layer_index = spec["layers"].index(args.layer) if args.layer in spec["layers"] else len(spec["layers"]) - 1
    if args.contrastive > 0:
        extra = build_contrastive(ratings_all, pairs, pairs_all, args.contrastive, args.seed,
                                  embed=lambda prompts: _prompt_embeddings(cache, spec, prompts, settings, state,
                                                                          layer_index))
        fill(cache, spec, [(p.prompt, t) for p in extra for t in (p.chosen, p.rejected)], settings, state)
        pairs = pairs + extra
    lik_spec = likelihood_spec(args.likelihood_model)
    # The likelihood cache is always read: rows already measured are used even when none are extracted now.
    lik = cache if spec == lik_spec else FeatureCache(root, lik_spec)
    if args.likelihood_pairs > 0:
        chosen_for_lik = _likelihood_rows(pairs, args.likelihood_pairs, args.seed)
        fill(lik, lik_spec, [(p.prompt, t) for p in chosen_for_lik for t in (p.chosen, p.rejected)],
             settings, state)
    labels = {name: np.array([r.labels.get(name, np.nan) for r in ratings], np.float64) for name in per_obj}
    prep = Prepared(ratings, labels, table(cache, [(r.prompt, r.response) for r in ratings], layer_index, lik),
                    pairs, table(cache, [(p.prompt, p.chosen) for p in pairs], layer_index, lik),
                    table(cache, [(p.prompt, p.rejected) for p in pairs], layer_index, lik), spec)
    prep.timings["features_s"] = time.perf_counter() - start
    return prep


def _likelihood_rows(pairs: list[D.PairRow], limit: int, seed: int) -> list[D.PairRow]:
    idx = D.stratified_sample([p.subset for p in pairs], limit, seed)
    return [pairs[i] for i in idx]


def _prompt_embeddings(cache, spec, prompts, settings, state, layer_index) -> np.ndarray:
    """Prompt states (n, Dg) used to find nearest-neighbour prompts (computed with a dummy response if missing)."""
    missing = [p for p in prompts if text_key(p, None) not in cache.prompts]
    if missing:
        fill(cache, spec, [(p, "") for p in missing], settings, state)
    return np.stack([cache.prompts[text_key(p, None)][layer_index] for p in prompts])


def fit(prep: Prepared, args: argparse.Namespace, use_contrastive: bool = True, use_likelihood: bool = True,
        subsets: tuple[str, ...] | None = None):
    """Stage 1, debiasing and stage 2 on prepared features -> (HeadParams, gate, report)."""
    from mo_explorer.models.gate_trainer import GateTrainConfig, train_gate

    learned = tuple(n for n in D.OBJECTIVES if n in prep.labels and np.isfinite(prep.labels[n]).sum() >= 5)
    lik_ok = use_likelihood and np.isfinite(prep.chosen.logprob).sum() >= 20
    measured = (recipe.VERBOSITY,) + ((recipe.LIKELIHOOD,) if lik_ok else ())
    union = _concat([prep.rating_table, prep.chosen, prep.rejected])
    params = recipe.fit_heads(prep.rating_table, prep.labels, learned, (), seed=args.seed)
    stats = recipe.fit_heads(union, {}, (), measured).measured
    params.objectives = learned + measured
    k = len(params.objectives)
    params.weight = np.vstack([params.weight, np.zeros((k - len(learned), params.weight.shape[1]))])
    params.offset = np.concatenate([params.offset, np.zeros(k - len(learned))])
    params.measured = stats
    debias = recipe.set_transform(params, recipe.rewards(params, union), args.verbosity_in_score)
    keep = [i for i, p in enumerate(prep.pairs)
            if (use_contrastive or not _is_contrastive(p)) and (subsets is None or p.subset in subsets)]
    diff = recipe.pair_reward_diff(params, prep.chosen.take(keep), prep.rejected.take(keep))
    names = [prep.pairs[i].subset for i in keep]
    counts = {s: names.count(s) for s in set(names)}
    weights = np.array([1.0 / counts[s] for s in names]) * len(names) / len(counts)  # each subset weighs the same
    rng = np.random.default_rng(args.seed)
    val = rng.random(len(keep)) < 0.1
    cfg = GateTrainConfig(steps=args.gate_steps, seed=args.seed)
    gate, gate_log = train_gate(prep.chosen.prompt_states[keep][~val], diff[~val], cfg, weights[~val])
    from mo_explorer.models.gate_trainer import gate_weights
    g_val = gate_weights(gate, prep.chosen.prompt_states[keep][val])
    val_acc = float(np.mean(np.sum(g_val * diff[val], axis=1) > 0)) if val.any() else float("nan")
    g_all = gate_weights(gate, prep.chosen.prompt_states[keep])
    concentration = {}
    for s in sorted(counts):
        sel = np.array([n == s for n in names])
        top = np.bincount(g_all[sel].argmax(1), minlength=len(params.objectives))
        concentration[s] = {"mean_max": float((g_all[sel].max(1) / g_all[sel].sum(1)).mean()),
                            "top": params.objectives[int(top.argmax())],
                            "mean": [float(x) for x in (g_all[sel] / g_all[sel].sum(1, keepdims=True)).mean(0)]}
    report = {"stage1": params.stage1, "debias": debias, "gate": {**gate_log, "val_accuracy": val_acc,
              "pairs": counts, "concentration": concentration}, "objectives": list(params.objectives)}
    return params, gate, report


def _is_contrastive(p: D.PairRow) -> bool:
    return p.id.split("/")[0] in ("neighbour", "padding", "truncation", "code-mutation", "refusal-benign",
                                  "refusal-harmful")


def _concat(tables: list[recipe.FeatureTable]) -> recipe.FeatureTable:
    return recipe.FeatureTable(*(np.concatenate([getattr(t, f) for t in tables]) for f in
                                 ("prompt_states", "response_states", "logprob", "words")))


def save_head(out: str | Path, params: recipe.HeadParams, gate, spec: dict, report: dict,
              lik_spec: dict | None = None) -> None:
    """Write the head directory (config.json + model.safetensors)."""
    import torch

    from mo_explorer.models.armo import ArmoHead, HeadConfig

    measured = {}
    for name, stats in params.measured.items():
        measured[name] = dict(stats)
        if name == recipe.LIKELIHOOD:
            measured[name]["model"] = dict(lik_spec or likelihood_spec())
    hidden = gate.layers[0].out_features
    cfg = HeadConfig(objectives=list(params.objectives), hidden_size=params.weight.shape[1], gate_hidden=hidden,
                     gate_layers=len(gate.layers) - 1, temperature=gate.temperature,
                     gate_input_size=gate.layers[0].in_features, backbone=spec,
                     extra={"reward_offset": [float(x) for x in params.offset], "measured": measured,
                            "training": report})
    head = ArmoHead(cfg)
    with torch.no_grad():
        head.regression_layer.weight.copy_(torch.tensor(params.weight, dtype=torch.float32))
        head.gating.load_state_dict(gate.state_dict())
        head.reward_transform_matrix.copy_(torch.tensor(params.transform, dtype=torch.float32))
    head.save(out)


def main(args: argparse.Namespace, settings: config.Settings) -> int:
    """Train a head and write it (and its model card) to args.out."""
    start = time.perf_counter()
    if not 0 < args.pairs_limit:
        raise UserError("--pairs-limit must be positive")
    prep = prepare(args, settings)
    params, gate, report = fit(prep, args)
    report["train_seconds"] = time.perf_counter() - start
    report["features_seconds"] = prep.timings["features_s"]
    report["command"] = getattr(args, "command_line", "")
    save_head(args.out, params, gate, prep.spec, report, likelihood_spec(args.likelihood_model))
    results = None
    if args.dev:
        from mo_explorer.training.evaluate import evaluate_file
        root = args.features or str(Path(settings.models.cache_dir).expanduser() / "features")
        results = evaluate_file(args.dev, args.out, settings, limit=args.dev_limit, seed=args.seed, features=root)
        (Path(args.out) / "dev_results.json").write_text(json.dumps(results, indent=2) + "\n")
    from mo_explorer.training.card import write_card
    write_card(args.out, dev=results if args.dev else None, command=report["command"],
               eval_command=f"python -m mo_explorer eval {args.dev} --limit {args.dev_limit} --seed {args.seed}"
               if args.dev else "")
    log.info("wrote %s in %.0f s", args.out, time.perf_counter() - start)
    return 0
