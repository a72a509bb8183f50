"""Ablations on cached features: each addition's effect on every dev subset, with 95% intervals.

Runs the train recipe several times on the same prepared features (no backbone call when the cache is full) and
scores a dev sample from the cache, so the comparison costs seconds. Writes ablation.json and prints Markdown.
Usage: python -m mo_explorer.training.ablate --ratings R --pairs P --dev DEV [train options] --out ablation.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from mo_explorer import config
from mo_explorer.training import data as D
from mo_explorer.training import train
from mo_explorer.training.feature_cache import FeatureCache
from mo_explorer.training.metrics import evaluate_pairs, grouped_folds
from mo_explorer.training.scoring import score_variant

log = logging.getLogger(__name__)


ABLATION_NOTE = (
    "Each row adds one thing to the row above, trained on the same cached features and scored on the same dev "
    "sample (`--dev-limit` pairs, stratified, seed 0). Cells: accuracy [95% Wilson interval]; `hard` is "
    "RM-Bench's hard split (chosen less styled than rejected); `rho(len)` is the Spearman correlation of the score "
    "with response length over all scored responses. The shipped head is the last row whose overall accuracy "
    "dev supports.\n\n")


def dev_tables(cfg: train.TrainConfig, settings, spec: dict, limit: int, seed: int):
    """Dev pairs (stratified sample) and their FeatureTables from the caches (extracting what is missing, the
    likelihood included when the recipe uses it, as the shipped head's own `eval` measures every dev answer)."""
    pairs = D.read_pairs(cfg.dev)
    pairs = [pairs[i] for i in D.stratified_sample([p.subset for p in pairs], limit, seed)]
    root = cfg.features or settings.models.features_dir
    cache = FeatureCache(root, spec)
    train.fill(cache, spec, [(p.prompt, t) for p in pairs for t in (p.chosen, p.rejected)], settings, {})
    lik_spec = train.run_likelihood_spec(cfg)
    lik = FeatureCache(root, lik_spec)
    if cfg.likelihood_pairs > 0 and lik_spec != spec:
        # Without this a fresh cache left every dev likelihood NaN: the variants differed only in their gates.
        train.fill(lik, lik_spec, [(p.prompt, t) for p in pairs for t in (p.chosen, p.rejected)], settings, {})
    layer_index = spec["layers"].index(train.head_layer(spec, cfg.layer))
    quality = None  # the trunk trained on every source scores the dev answers, as the shipped head would
    if cfg.trunk:
        quality = train.trunk_quality(cfg.trunk, [(p.prompt, t) for p in pairs for t in (p.chosen, p.rejected)],
                                      settings)
    chosen = train.table(cache, [(p.prompt, p.chosen) for p in pairs], layer_index, lik, quality=quality)
    rejected = train.table(cache, [(p.prompt, p.rejected) for p in pairs], layer_index, lik, quality=quality)
    return pairs, chosen, rejected


def summarise(pairs, sc, sr, rc=None, rr=None, objectives=()) -> dict:
    """evaluate_pairs on a dev sample."""
    return evaluate_pairs([p.subset for p in pairs], sc, sr, [(p.chosen_style, p.rejected_style) for p in pairs],
                          rc, rr, objectives,
                          (np.array([len(p.chosen.split()) for p in pairs]),
                           np.array([len(p.rejected.split()) for p in pairs])))


def markdown(rows: dict[str, dict]) -> str:
    """A Markdown table: one row per variant, overall (raw and length-balanced) and per-subset accuracy with 95%
    intervals."""
    subsets = sorted({s for r in rows.values() for s in r["subsets"]})
    head = ("| variant | overall | length-balanced | " + " | ".join(s.replace("rmbench-", "") for s in subsets)
            + " | hard | rho(len) |")
    lines = [head, "|" + "---|" * (len(subsets) + 5)]
    for name, r in rows.items():
        lb = r.get("length_balanced", {}).get("balanced", float("nan"))
        cell = [f"{100 * r['accuracy']:.1f} [{100 * r['ci95'][0]:.0f}, {100 * r['ci95'][1]:.0f}]",
                "" if lb != lb else f"{100 * lb:.1f}"]
        cell += [f"{100 * r['subsets'][s]['accuracy']:.1f} [{100 * r['subsets'][s]['ci95'][0]:.0f}, "
                 f"{100 * r['subsets'][s]['ci95'][1]:.0f}]" if s in r["subsets"] else "" for s in subsets]
        hard = r.get("difficulty", {}).get("hard")
        cell.append(f"{100 * hard['accuracy']:.1f}" if hard else "")
        cell.append(f"{r['length_spearman']:+.2f}" if "length_spearman" in r else "")
        lines.append(f"| {name} | " + " | ".join(cell) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: config.Settings) -> dict:
    """Fit every variant and evaluate each on the dev sample."""
    cfg = train.TrainConfig.from_args(args)
    prep = train.prepare(cfg, settings)
    pairs, chosen, rejected = dev_tables(cfg, settings, prep.spec, cfg.dev_limit, cfg.seed)
    rows: dict[str, dict] = {}
    longer = np.array([len(p.chosen.split()) for p in pairs], float), np.array([len(p.rejected.split())
                                                                              for p in pairs], float)
    rows["longer response wins"] = summarise(pairs, *longer)
    variants = {
        "ridge heads, uniform gate": dict(use_contrastive=False, use_likelihood=False, use_rating_pairs=False,
                                          uniform=True),
        "ArmoRM recipe (gate on train pairs)": dict(use_contrastive=False, use_likelihood=False,
                                                    use_rating_pairs=False),
        "+ rating-derived pairs": dict(use_contrastive=False, use_likelihood=False, use_rating_pairs=True),
        "+ contrastive pairs": dict(use_contrastive=True, use_likelihood=False, use_rating_pairs=True),
        "+ likelihood objective": dict(use_contrastive=True, use_likelihood=True, use_rating_pairs=True),
    }
    fitted = {}
    for name, v in variants.items():
        params, gate, report = train.fit(prep, cfg, v["use_contrastive"], v["use_likelihood"],
                                         v["use_rating_pairs"])
        sc, sr, rc, rr = score_variant(params, gate, chosen, rejected, v.get("uniform", False))
        rows[name] = summarise(pairs, sc, sr, rc, rr, params.objectives)
        fitted[name] = report
        log.info("%-40s %.3f", name, rows[name]["accuracy"])
    ok = np.isfinite(chosen.logprob) & np.isfinite(rejected.logprob)
    if ok.any():
        rows[f"likelihood alone (covered pairs, n={int(ok.sum())})"] = summarise(
            [p for p, o in zip(pairs, ok) if o], chosen.logprob[ok], rejected.logprob[ok])
    backbones = backbone_table(cfg, settings, pairs, prep.spec)
    if args.compare_backbones:
        backbones = recipe_comparison(cfg, settings) + "\n\n" + backbones
    return {"rows": rows, "reports": fitted, "markdown": markdown(rows), "backbones": backbones}


def recipe_comparison(cfg: train.TrainConfig, settings) -> str:
    """The full recipe with each backbone on identical rows (those the likelihood model has features for)."""
    lines = ["The whole recipe (ridge heads, debiasing, gate with the likelihood objective) with each backbone, "
             "restricted to the training rows that have SmolLM2 features (`--rows-cached-by embedded:smollm2`), "
             "so every backbone sees identical rows; scored on the dev sample.", "",
             "| backbone | rated rows | gate pairs | dev overall | chat | code | safety-refuse | safety-response |",
             "|---|---|---|---|---|---|---|---|"]
    for backbone, layer in (("embedded:minilm", None), ("embedded:smollm2", 9), ("embedded:smollm2", 15),
                            ("embedded:smollm2", 30)):
        a = dataclasses.replace(cfg, backbone=backbone, layer=layer, rows_cached_by=cfg.likelihood_model)
        prep = train.prepare(a, settings)
        params, gate, report = train.fit(prep, a, True, True, True)
        pairs, chosen, rejected = dev_tables(a, settings, prep.spec, a.dev_limit, a.seed)
        sc, sr, _, _ = score_variant(params, gate, chosen, rejected)
        res = summarise(pairs, sc, sr)
        name = backbone + (f" layer {layer}" if layer else "")
        lines.append(f"| {name} | {len(prep.ratings)} | {sum(report['gate']['pairs'].values())} | "
                     f"{100 * res['accuracy']:.1f} [{100 * res['ci95'][0]:.0f}, {100 * res['ci95'][1]:.0f}] | "
                     + " | ".join(f"{100 * v['accuracy']:.1f}" for v in res["subsets"].values()) + " |")
    return "\n".join(lines)


def backbone_table(cfg: train.TrainConfig, settings, pairs, spec: dict) -> str:
    """Grouped 5-fold linear-probe accuracy on dev pairs covered by every backbone: representation quality."""
    root = cfg.features or settings.models.features_dir
    lik_spec = train.run_likelihood_spec(cfg)
    candidates = {f"{spec['name']} (mean pool)": (FeatureCache(root, spec), 0)}
    smol = FeatureCache(root, lik_spec)
    for i, layer in enumerate(lik_spec["layers"]):
        candidates[f"{lik_spec['name']} layer {layer} (last token)"] = (smol, i)
    covered = [p for p in pairs if all(c.has(p.prompt, t) for c, _ in candidates.values()
                                       for t in (p.chosen, p.rejected))]
    if len(covered) < 50:
        return ""
    lines = [f"Grouped 5-fold linear Bradley-Terry probe on the response-feature difference, {len(covered)} dev "
             "pairs covered by every backbone (cross-validated on dev: a measure of what each representation "
             "separates, not a training recipe).", "", "| features | dims | probe accuracy | cost per text |",
             "|---|---|---|---|"]
    groups = [D.prompt_key(p.prompt) for p in covered]
    for name, (cache, li) in candidates.items():
        _, rc, _, _ = cache.arrays([p.prompt for p in covered], [p.chosen for p in covered])
        _, rr, _, _ = cache.arrays([p.prompt for p in covered], [p.rejected for p in covered])
        acc = probe_accuracy(rc[:, li] - rr[:, li], groups, seed=cfg.seed)
        cost = "1x" if "minilm" in name else "~20x (full depth; ~layer/30 of it when stopped early)"
        lines.append(f"| {name} | {rc.shape[-1]} | {100 * acc:.1f} | {cost} |")
    return "\n".join(lines)


def probe_accuracy(diff: np.ndarray, groups: list[str], folds: int = 5, l2: float = 10.0, seed: int = 0) -> float:
    """Grouped k-fold accuracy of a linear Bradley-Terry probe on feature differences diff (n, D)."""
    from scipy.optimize import minimize

    fold = grouped_folds(groups, folds, seed)
    # Random signs: half the pairs are presented as (rejected - chosen) with label 0, so the probe needs no bias.
    sign = np.where(np.random.default_rng(seed + 1).random(len(diff)) < 0.5, 1.0, -1.0)
    x, y = diff * sign[:, None], (sign > 0).astype(float)
    correct = 0.0
    for f in range(folds):
        tr, te = fold != f, fold == f
        sd = x[tr].std(0) + 1e-6

        def loss(w, xt=x[tr] / sd, yt=y[tr]):
            z = xt @ w
            p = 1 / (1 + np.exp(-z))
            return (np.sum(np.logaddexp(0, z) - yt * z) + 0.5 * l2 * w @ w,
                    xt.T @ (p - yt) + l2 * w)

        w = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 300}).x
        correct += np.sum(((x[te] / sd) @ w > 0) == (y[te] > 0))
    return float(correct / len(x))


def ablation_command(args: argparse.Namespace) -> str:
    """The command line of this ablation run (the train options, then ablate's own)."""
    line = train.command_line(train.TrainConfig.from_args(args), skip=("out",))  # ablate writes no head
    line = line.replace("python -m mo_explorer train", "python -m mo_explorer.training.ablate")
    return line + (" --compare-backbones" if args.compare_backbones else "") + f" --card-dir {args.card_dir}"


def main() -> int:
    """Command-line entry: same options as train, plus --dev and --out."""
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(prog="mo_explorer.training.ablate")
    train.configure(parser)
    parser.add_argument("--card-dir", default=None,
                        help="Head directory whose MODEL_CARD.md gets the ablation and backbone tables "
                             "(with its dev_results.json).")
    parser.add_argument("--compare-backbones", action="store_true",
                        help="Also run the whole recipe per backbone on the rows every backbone has features for.")
    parser.add_argument("--ablation-out", default="ablation.json", help="Where to write the ablation JSON.")
    args = parser.parse_args()
    if not args.dev:
        parser.error("--dev is required")
    result = run(args, config.Settings.from_env())
    Path(args.ablation_out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    log.info("ablation table:\n%s\n%s", result["markdown"], result["backbones"])
    if args.card_dir:
        from mo_explorer.training.card import ABLATION_FILE, ablation_section, write_card
        card = Path(args.card_dir)
        cfg = json.loads((card / "config.json").read_text())
        dev = json.loads((card / "dev_results.json").read_text()) if (card / "dev_results.json").is_file() else None
        # Kept beside the card, so retraining (which rewrites the card) carries the last ablation along.
        note = ABLATION_NOTE + f"Produced by `{ablation_command(args)}`.\n\n" + result["markdown"]
        (card / ABLATION_FILE).write_text(ablation_section(note, result["backbones"]) + "\n")
        write_card(card, dev=dev, command=cfg["extra"]["training"].get("command", ""),
                   eval_command=f"python -m mo_explorer eval {args.dev} --limit {args.dev_limit} --seed {args.seed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
