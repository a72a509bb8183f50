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
from mo_explorer.training import candidates, recipe, stage2
from mo_explorer.training import data as D
from mo_explorer.training.contrastive import build_contrastive, rating_pairs
from mo_explorer.training.feature_cache import FeatureCache, text_key
from mo_explorer.training.options import (  # noqa: F401 - re-exported: train.X is how the commands read them
    DEFAULT_PER_OBJECTIVE,
    LIKELIHOOD_TOKENS,
    TrainConfig,
    configure,
    configure_gate,
    likelihood_spec,
    run_likelihood_spec,
)
from mo_explorer.training.sources import source_of, word_lengths

log = logging.getLogger(__name__)


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
    # --debias-candidates: the generator's answers to training prompts, their prompt keys and sources, row by row
    candidates: recipe.FeatureTable | None = None
    candidate_groups: list[str] = field(default_factory=list)
    candidate_sources: list[str] = field(default_factory=list)


def feature_spec(backbone: str, layer: int | None) -> dict:
    """The FeatureSpec json of a backbone choice."""
    if backbone in ("embedded:minilm",) or "minilm" in backbone.lower():
        # 256 tokens in all: the last 64 of the question, then the response (features.py, "budgeted" layout).
        return {"name": backbone, "layers": [6], "pooling": "mean", "logprob": False,
                "max_prompt_tokens": 64, "max_response_tokens": 254, "layout": "budgeted"}
    if backbone == "embedded:smollm2" and (layer is None or layer in likelihood_spec()["layers"]):
        # One pass gives the states and the likelihood; the head reads one of the captured layers (head_layer).
        return likelihood_spec()
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
    cache.fill(groups, state[key].encode, encode_items=getattr(state[key], "encode_items", None))


def table(cache: FeatureCache, items: list[tuple[list[dict], str]], layer_index: int,
          lik: FeatureCache | None, measured: set[str] | None = None,
          quality: dict[str, float] | None = None) -> recipe.FeatureTable:
    """FeatureTable of items from a filled cache; likelihood NaN where `lik` lacks the row or, when `measured` is
    given, where the row's key is not in it (so a run never depends on what else the shared cache holds); the
    trunk's out-of-fold quality where `quality` has the row, else NaN."""
    p, r, lp, _ = cache.arrays([i[0] for i in items], [i[1] for i in items])
    if lik is not None:
        lp = np.array([lik.responses[k][1] if k in lik.responses and (measured is None or k in measured)
                       else np.nan for k in (text_key(q, s) for q, s in items)], np.float32)
    words = np.array([len(s.split()) for _, s in items], np.float64)
    q = np.array([(quality or {}).get(text_key(a, b), np.nan) for a, b in items], np.float64)
    return recipe.FeatureTable(p[:, layer_index], r[:, layer_index], lp, words, q)


def out_of_fold_quality(trunk_dir: str | None) -> dict[str, float] | None:
    """{text key: quality} from a trunk directory's out_of_fold.npz (each text scored by the trunk of the fold that
    left its source out), or None without a trunk."""
    if not trunk_dir:
        return None
    path = Path(trunk_dir) / "out_of_fold.npz"
    if not path.exists():
        from mo_explorer.errors import UserError
        raise UserError(f"{path} is missing: write it with `python -m mo_explorer.training.trunk ... --out "
                        f"{trunk_dir}`")
    with np.load(path) as z:
        return {str(k): float(v) for k, v in zip(z["keys"], z["quality"])}


def trunk_quality(trunk_dir: str, items: list[tuple[list[dict], str]], settings: config.Settings,
                  backbone: str = "embedded:minilm") -> dict[str, float]:
    """{text key: quality} of (prompt, response) items scored by the trunk in `trunk_dir` (trained on every
    source) on top of `backbone`'s lower layers: what the head will compute for text it never trained on, e.g.
    the dev answers."""
    from mo_explorer.models.embedded import resolve_model_path
    from mo_explorer.models.trunk import TrunkScorer, load_encoder

    # threads=None: the caller (variants, ablate) keeps its own torch threads for the fits that follow.
    scorer = TrunkScorer.load(trunk_dir, *load_encoder(resolve_model_path(backbone, settings.models.cache_dir),
                                                       threads=None))
    groups: dict[str, tuple[list[dict], list[str]]] = {}
    for p, r in items:
        groups.setdefault(D.prompt_key(p), (p, []))[1].append(r)
    out = {}
    for p, responses in groups.values():
        for r, q in zip(responses, scorer.encode(p, responses)[1]):
            out[text_key(p, r)] = float(q)
    return out


def prepare(cfg: TrainConfig, settings: config.Settings) -> Prepared:
    """Read and sample the data, build contrastive pairs, extract (or reuse) every feature needed."""
    start = time.perf_counter()
    ratings_all, pairs_all = D.read_ratings(cfg.ratings), D.read_pairs(cfg.pairs)
    per_obj = dict(cfg.per_objective)
    grouped = {name: per_obj.pop(name) for name in list(per_obj) if name in cfg.grouped}
    idx = set(D.sample_ratings(ratings_all, per_obj, cfg.seed))
    for name, n in grouped.items():  # whole prompt groups: the head learns differences between responses
        idx.update(D.sample_grouped(ratings_all, name, n, cfg.per_prompt, cfg.seed))
    per_obj.update(grouped)
    ratings = [ratings_all[i] for i in sorted(idx)]
    pairs = [pairs_all[i] for i in D.stratified_sample([p.subset for p in pairs_all], cfg.pairs_limit, cfg.seed)]
    base_pairs = list(pairs)
    spec = feature_spec(cfg.backbone, cfg.layer)
    root = cfg.features or settings.models.features_dir
    cache, state = FeatureCache(root, spec), {}
    restrict = FeatureCache(root, feature_spec(cfg.rows_cached_by, None)) if cfg.rows_cached_by else None
    if restrict is not None:
        ratings = [r for r in ratings if restrict.has(r.prompt, r.response)]
        pairs = [p for p in pairs if restrict.has(p.prompt, p.chosen) and restrict.has(p.prompt, p.rejected)]
        base_pairs = list(pairs)
        log.info("rows cached by %s: %d rated rows, %d pairs", cfg.rows_cached_by, len(ratings), len(pairs))
    items = [(r.prompt, r.response) for r in ratings] + [(p.prompt, t) for p in pairs for t in (p.chosen, p.rejected)]
    fill(cache, spec, items, settings, state)
    layer_index = spec["layers"].index(head_layer(spec, cfg.layer))
    if cfg.contrastive > 0:
        extra = build_contrastive(ratings_all, pairs, pairs_all, cfg.contrastive, cfg.seed,
                                  embed=lambda prompts: _prompt_embeddings(cache, spec, prompts, settings, state,
                                                                          layer_index),
                                  fact_pairs=cfg.fact_pairs)
        if restrict is not None:
            extra = [p for p in extra if restrict.has(p.prompt, p.chosen) and restrict.has(p.prompt, p.rejected)]
        fill(cache, spec, [(p.prompt, t) for p in extra for t in (p.chosen, p.rejected)], settings, state)
        pairs = pairs + extra
    if cfg.rating_pairs > 0:
        pairs = pairs + rating_pairs(ratings, cfg.rating_pairs, cfg.seed)
    lik_spec = run_likelihood_spec(cfg)
    lik = cache if spec == lik_spec else FeatureCache(root, lik_spec)
    measured: set[str] | None = None  # None: every row (the backbone pass measures them all, or rows were restricted)
    if spec != lik_spec and restrict is None:
        chosen_for_lik = likelihood_rows(base_pairs, cfg.likelihood_pairs, cfg.seed) if cfg.likelihood_pairs else []
        if cfg.likelihood_pairs and cfg.likelihood_contrastive:
            chosen_for_lik += [p for p in pairs if _is_contrastive(p)]
        elif cfg.likelihood_pairs:  # a changed number is invisible to the heads: only the likelihood can judge it
            chosen_for_lik += [p for p in pairs if p.subset == "fact-number"]
        lik_items = [(p.prompt, t) for p in chosen_for_lik for t in (p.chosen, p.rejected)]
        fill(lik, lik_spec, lik_items, settings, state)
        measured = {text_key(q, t) for q, t in lik_items}
    labels = {name: np.array([r.labels.get(name, np.nan) for r in ratings], np.float64) for name in per_obj}
    oof = out_of_fold_quality(cfg.trunk)
    prep = Prepared(ratings, labels,
                    table(cache, [(r.prompt, r.response) for r in ratings], layer_index, lik, measured),
                    pairs, table(cache, [(p.prompt, p.chosen) for p in pairs], layer_index, lik, measured, oof),
                    table(cache, [(p.prompt, p.rejected) for p in pairs], layer_index, lik, measured, oof), spec)
    if cfg.debias_candidates:
        prepare_candidates(prep, cfg, cache, layer_index, settings, state)
    if oof is not None:
        log.info("trunk quality out of fold on %d of %d pairs",
                 int((np.isfinite(prep.chosen.quality) & np.isfinite(prep.rejected.quality)).sum()), len(pairs))
    prep.timings["features_s"] = time.perf_counter() - start
    return prep


def prepare_candidates(prep: Prepared, cfg: TrainConfig, cache: FeatureCache, layer_index: int,
                       settings: config.Settings, state: dict) -> None:
    """Features of the --debias-candidates file's answers into prep. Their quality comes from the trunk trained on
    every source (they have no out-of-fold score; the debiasing reads no label), their log-prob from the file (the
    generator measured it while writing them, as in the app)."""
    rows = candidates.load(cfg.debias_candidates)
    items = [([{"role": "user", "content": r["prompt"]}], t) for r in rows for t in r["texts"]]
    fill(cache, prep.spec, items, settings, state)
    quality = trunk_quality(cfg.trunk, items, settings, cfg.backbone) if cfg.trunk else None
    tab = table(cache, items, layer_index, None, None, quality)
    tab.logprob = np.array([lp for r in rows for lp in r["mean_logprob"]], np.float32)
    prep.candidates = tab
    prep.candidate_groups = [r["prompt"] for r in rows for _ in r["texts"]]
    prep.candidate_sources = [r["source"] for r in rows for _ in r["texts"]]


def candidate_debias(prep: Prepared, params: recipe.HeadParams, subsets: tuple[str, ...] | None,
                     keep: tuple[str, ...] = ()) -> dict:
    """Refit params' debiasing within the prompts of the candidates this fit may see (recipe.debias_within_prompts)."""
    if prep.candidates is None:
        from mo_explorer.errors import UserError
        raise UserError("--debias-candidates was not given when the features were prepared")
    rows = np.flatnonzero(candidates.kept(prep.candidate_sources, subsets))
    return recipe.debias_within_prompts(params, recipe.rewards(params, prep.candidates.take(rows)),
                                        [prep.candidate_groups[i] for i in rows], keep)


def likelihood_rows(pairs: list[D.PairRow], limit: int, seed: int) -> list[D.PairRow]:
    """The training pairs also scored by the likelihood model: a seeded random prefix (any prefix is a sample)."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    return [pairs[i] for i in order[:limit]]


def _prompt_embeddings(cache, spec, prompts, settings, state, layer_index) -> np.ndarray:
    """Prompt states (n, Dg) used to find nearest-neighbour prompts (computed with a dummy response if missing)."""
    missing = [p for p in prompts if text_key(p, None) not in cache.prompts]
    if missing:
        fill(cache, spec, [(p, "") for p in missing], settings, state)
    return np.stack([cache.prompts[text_key(p, None)][layer_index] for p in prompts])


def fit(prep: Prepared, cfg: TrainConfig, use_contrastive: bool = True, use_likelihood: bool = True,
        use_rating_pairs: bool = True, subsets: tuple[str, ...] | None = None):
    """Stage 1, debiasing and stage 2 on prepared features -> (HeadParams, gate, report)."""

    learned = tuple(n for n in D.OBJECTIVES if n in prep.labels and np.isfinite(prep.labels[n]).sum() >= 5)
    lik_ok = use_likelihood and np.isfinite(prep.chosen.logprob).sum() >= 20
    quality_ok = bool(cfg.trunk) and np.isfinite(prep.chosen.quality).sum() >= 20  # --trunk '': compare without
    measured = ((recipe.VERBOSITY,) + ((recipe.LIKELIHOOD,) if lik_ok else ())
                + ((recipe.QUALITY,) if quality_ok else ()))
    union = _concat([prep.rating_table, prep.chosen, prep.rejected])
    groups = [D.prompt_key(r.prompt) for r in prep.ratings]
    params = recipe.fit_heads(prep.rating_table, prep.labels, learned, (), seed=cfg.seed,
                              centred={n: groups for n in cfg.grouped})
    keep = [i for i, p in enumerate(prep.pairs)
            if (use_contrastive or not _is_contrastive(p)) and (use_rating_pairs or not p.id.startswith("rating/"))
            and (subsets is None or p.subset in subsets)]
    names = [prep.pairs[i].subset for i in keep]
    counts = {s: names.count(s) for s in set(names)}
    groups = [weight_group(prep.pairs[i], cfg.gate_weighting) for i in keep]
    sizes = {g: groups.count(g) for g in set(groups)}
    weights = np.array([1.0 / sizes[g] for g in groups]) * len(groups) / len(sizes)  # each group weighs the same
    if cfg.gate_length_balance:
        weights = weights * length_balance([prep.pairs[i] for i in keep], groups)
    held_margin = None  # the preference head's cross-fitted margins on the gate's pairs
    if cfg.preference_l2 > 0:
        held_margin = recipe.add_preference_head(params, union, prep.chosen.take(keep), prep.rejected.take(keep),
                                                 weights, cfg.preference_l2, cfg.seed)
        learned = params.objectives
    stats = recipe.fit_heads(union, {}, (), measured).measured
    params.objectives = learned + measured
    k = len(params.objectives)
    params.weight = np.vstack([params.weight, np.zeros((k - len(learned), params.weight.shape[1]))])
    params.offset = np.concatenate([params.offset, np.zeros(k - len(learned))])
    params.measured = stats
    # Only the pairs this fit trains on: a left-out source's pairs must not set the debiasing either.
    debias = recipe.set_transform(params, recipe.rewards(params, union), cfg.verbosity_in_score,
                                  (recipe.rewards(params, prep.chosen.take(keep)),
                                   recipe.rewards(params, prep.rejected.take(keep))), cfg.debias_within_pairs,
                                  keep=() if cfg.debias_quality else (recipe.QUALITY,))
    if cfg.debias_candidates:
        debias = candidate_debias(prep, params, subsets, keep=() if cfg.debias_quality else (recipe.QUALITY,))
    diff = recipe.pair_reward_diff(params, prep.chosen.take(keep), prep.rejected.take(keep), held_margin)
    mask = stage2.measured_mask(params.objectives, prep.chosen.take(keep), prep.rejected.take(keep),
                                params.transform)
    gate, gate_report = stage2.fit_gate(prep.chosen.prompt_states[keep], diff, weights, mask, names,
                                        [D.prompt_key(prep.pairs[i].prompt) for i in keep], params.objectives, cfg)
    report = {"stage1": params.stage1, "debias": debias, "verbosity_in_score": cfg.verbosity_in_score,
              "gate": {**gate_report, "pairs": counts},
              "objectives": list(params.objectives)}
    return params, gate, report


def length_balance(pairs: list[D.PairRow], groups: list[str], weights: np.ndarray | None = None) -> np.ndarray:
    """Per-pair weights (n,) that, within each group, give the pairs whose chosen answer is the longer and those
    whose chosen answer is the shorter the same total weight (pairs of equal length keep their share; a group
    with one side empty is left as it is). The group's total weight is unchanged. `weights` (default: 1 each) are
    the weights rescaled."""
    len_c, len_r = word_lengths(pairs)
    side = np.sign(len_c - len_r)
    keys = np.array(groups)
    out = np.ones(len(pairs)) if weights is None else np.asarray(weights, float).copy()
    for g in set(groups):
        sel = keys == g
        longer, shorter = out[sel & (side > 0)].sum(), out[sel & (side < 0)].sum()
        if longer > 0 and shorter > 0:
            half = (longer + shorter) / 2
            out[sel & (side > 0)] *= half / longer
            out[sel & (side < 0)] *= half / shorter
    return out


def weight_group(pair: D.PairRow, by: str) -> str:
    """The group a gate training pair shares its weight with: its subset, or its source (the held-out folds of
    `--validate loso`, with every constructed pair in one group)."""
    if by == "subset":
        return pair.subset
    return source_of(pair) or "constructed"


def _is_contrastive(p: D.PairRow) -> bool:
    return p.id.split("/")[0] in ("neighbour", "padding", "truncation", "code-mutation", "refusal-benign",
                                  "refusal-harmful", "fact-number")


def _concat(tables: list[recipe.FeatureTable]) -> recipe.FeatureTable:
    return recipe.FeatureTable(*(np.concatenate([getattr(t, f) for t in tables]) for f in
                                 ("prompt_states", "response_states", "logprob", "words", "quality")))


def head_layer(spec: dict, layer: int | None) -> int:
    """The captured layer the heads and gate read: `layer` when the spec captures it, else the spec's last."""
    return layer if layer in spec["layers"] else spec["layers"][-1]


def _floor_of(gate) -> list[float] | None:
    """The trained gate's floor as HeadConfig stores it (None without one)."""
    floor = gate.members[0].floor if hasattr(gate, "members") else gate.floor
    return [float(x) for x in floor] if bool((floor > 0).any()) else None


def save_head(out: str | Path, params: recipe.HeadParams, gate, spec: dict, report: dict,
              lik_spec: dict | None = None, layer: int | None = None, trunk_dir: str | None = None) -> None:
    """Write the head directory (config.json + model.safetensors, and a copy of the trunk when the head has the
    `quality` objective); `layer` is the captured layer it reads."""
    import shutil

    import torch

    from mo_explorer.models.armo import ArmoHead, GateEnsemble, HeadConfig

    measured = {}
    for name, stats in params.measured.items():
        measured[name] = dict(stats)
        if name == recipe.LIKELIHOOD:
            measured[name]["model"] = dict(lik_spec or likelihood_spec())
    hidden = gate.layers[0].out_features
    cfg = HeadConfig(objectives=list(params.objectives), hidden_size=params.weight.shape[1], gate_hidden=hidden,
                     gate_layers=len(gate.layers) - 1, temperature=gate.temperature,
                     gate_input_size=gate.layers[0].in_features,
                     gate_members=len(gate.members) if isinstance(gate, GateEnsemble) else 1, backbone=spec,
                     gate_floor=_floor_of(gate),
                     extra={"reward_offset": [float(x) for x in params.offset], "measured": measured,
                            "head_layer": head_layer(spec, layer), "training": report})
    head = ArmoHead(cfg)
    with torch.no_grad():
        head.regression_layer.weight.copy_(torch.tensor(params.weight, dtype=torch.float32))
        head.gating.load_state_dict(gate.state_dict())
        head.reward_transform_matrix.copy_(torch.tensor(params.transform, dtype=torch.float32))
    head.save(out)
    if recipe.QUALITY in params.objectives:
        from mo_explorer.models.trunk import trunk_files

        for stale in trunk_files(out):  # a previous ensemble's members or parts must not join this head's trunk
            stale.unlink()
        for path in trunk_files(trunk_dir):
            shutil.copy2(path, Path(out) / path.name)
        shutil.copy2(Path(trunk_dir) / "trunk.json", Path(out) / "trunk.json")


def record_trust(out: str | Path, trust: dict) -> None:
    """Add the held-out table's summary to the head's config.json (`extra.trust`): what the page shows."""
    path = Path(out) / "config.json"
    data = json.loads(path.read_text())
    data.setdefault("extra", {})["trust"] = trust
    path.write_text(json.dumps(data, indent=2) + "\n")


def command_line(cfg: TrainConfig, skip: tuple[str, ...] = ()) -> str:
    """The `python -m mo_explorer train ...` command that reproduces this run (defaults included), without the
    options named in `skip` (argparse dests)."""
    parts = ["python -m mo_explorer train"]
    probe = argparse.ArgumentParser()
    configure(probe)
    for action in probe._actions:  # noqa: SLF001 - argparse exposes no public list of options
        # --features is where this machine caches, not a training choice: the command stays portable.
        if not action.option_strings or action.dest in ("help", "features", "validate", *skip) \
                or not hasattr(cfg, action.dest):
            continue
        value = getattr(cfg, action.dest)
        flag = action.option_strings[0]
        if isinstance(value, dict):
            value = json.dumps(value)
        if isinstance(value, bool):  # a BooleanOptionalAction also names its negation, e.g. --no-verbosity-in-score
            negation = action.option_strings[1:] if isinstance(action, argparse.BooleanOptionalAction) else []
            parts += [flag] if value else negation
        elif isinstance(value, (list, tuple)):
            parts += [flag, *map(str, value)] if value else []
        elif value is not None:
            value = _relative(value) if action.dest == "out" else value
            parts += [flag, f"'{value}'" if any(c in str(value) for c in " {}\"") else str(value)]
    return " ".join(parts)


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(config.REPO_ROOT))
    except ValueError:
        return path


def main(args: argparse.Namespace, settings: config.Settings) -> int:
    """Train a head and write it (and its model card) to cfg.out."""
    start = time.perf_counter()
    cfg = TrainConfig.from_args(args)
    prep = prepare(cfg, settings)
    params, gate, report = fit(prep, cfg, use_likelihood=cfg.likelihood_pairs > 0)
    report["train_seconds"] = time.perf_counter() - start
    report["features_seconds"] = prep.timings["features_s"]
    report["command"] = command_line(cfg)
    save_head(cfg.out, params, gate, prep.spec, report, run_likelihood_spec(cfg), cfg.layer, cfg.trunk)
    results = None
    if cfg.dev:
        from mo_explorer.training.evaluate import evaluate_file
        root = cfg.features or settings.models.features_dir
        results = evaluate_file(cfg.dev, cfg.out, settings, limit=cfg.dev_limit, seed=cfg.seed, features=root)
        (Path(cfg.out) / "dev_results.json").write_text(json.dumps(results, indent=2) + "\n")
    if cfg.validate == "loso":
        from mo_explorer.training import validate
        from mo_explorer.training.card import LOSO_FILE

        def refit(p: Prepared, c: TrainConfig, subsets: tuple[str, ...]):
            return fit(p, c, use_likelihood=c.likelihood_pairs > 0, subsets=subsets)

        loso = validate.loso(prep, cfg, refit)
        table = (f"Each row: the recipe fitted without that source, scored on its {cfg.pairs_limit}-pair sample's "
                 f"pairs of it (seed {cfg.seed}); `{command_line(cfg)} --validate loso`. Length-balanced: the mean "
                 "of the accuracy where the chosen answer is the longer (pairs in brackets) and where it is the "
                 "shorter; \"longer wins\" scores 50 on it.\n\n" + validate.markdown(loso, results)
                 + "\n\nEach objective alone on each left-out source, length-balanced (raw):\n\n"
                 + validate.objective_markdown(loso))
        (Path(cfg.out) / LOSO_FILE).write_text(table + "\n")
        record_trust(cfg.out, validate.trust_summary(loso, results))
        (Path(cfg.out) / "loso.json").write_text(json.dumps(loso, indent=2) + "\n")
        print(table)
    from mo_explorer.training.card import write_card
    write_card(cfg.out, dev=results if cfg.dev else None, command=report["command"],
               eval_command=f"python -m mo_explorer eval {cfg.dev} --limit {cfg.dev_limit} --seed {cfg.seed}"
               if cfg.dev else "")
    log.info("wrote %s in %.0f s", cfg.out, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _parser = argparse.ArgumentParser(prog="mo_explorer train")
    configure(_parser)
    sys.exit(main(_parser.parse_args(), config.Settings.from_env()))
