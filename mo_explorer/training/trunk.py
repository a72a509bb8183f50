"""`python -m mo_explorer.training.trunk`: train MiniLM's top layers on pairs, compared with a frozen probe.

Data: a stratified sample of the training pairs (seed 0) plus the pairs derived from ratings (as `train` samples
them), and the RM-Bench dev sample. MiniLM's states after layer 4 are cached once (models/trunk.py, state_cache.py).
Both models are asked for quality beyond length: a Bradley-Terry loss with a length term fitted and dropped.
- trunk: layers 5-6 + mean pooling + a `quality` head, fine-tuned (models/trunk.py);
- probe: a linear BT head on the frozen layer-6 mean-pooled states of the same tokens (bt_probe.py).
Pairs are drawn with each source weighing the same and, within each subset, chosen-longer and chosen-shorter pairs
weighing the same. Leave-one-source-out as `train --validate loso` (validate.fit_without): train without a
source, score its pairs; then both trained on every source and scored on RM-Bench dev. The table is raw and
length-balanced accuracy (metrics.length_balanced) side by side. `--out` writes the trunk trained on every source
(models/trunk.py: trunk.safetensors, trunk.json with the verdict) and out_of_fold.npz (each pair's quality from the
fold that left it out: what a gate may be trained on). Heavy imports happen inside the functions.
Measured numbers: bench/trunk.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mo_explorer import config
from mo_explorer.training import data as D
from mo_explorer.training.bt_probe import fit_probe
from mo_explorer.training.contrastive import rating_pairs
from mo_explorer.training.feature_cache import text_key
from mo_explorer.training.metrics import length_balanced, pair_correct
from mo_explorer.training.pairs import code_mutation_pairs
from mo_explorer.training.sources import HELD_OUT_SOURCES, JUDGED_BY_ALPACAEVAL, longer_wins, source_of, word_lengths
from mo_explorer.training.state_cache import StateCache
from mo_explorer.training.style import STYLE_TERMS, log_len_diff, style_diffs
from mo_explorer.training.train import DEFAULT_PER_OBJECTIVE, length_balance

log = logging.getLogger(__name__)

MODELS = ("probe", "trunk")
CODE_SUBSET = "code-mutation"  # the subset of pairs.code_mutation_pairs (--code-pairs)


@dataclass(frozen=True)
class TrunkRunConfig:
    """Options of the trunk command, typed once from the parser."""

    pairs: str
    ratings: str
    dev: str | None
    pairs_limit: int
    extra_pairs: int
    rating_pairs: int
    code_pairs: int
    dev_limit: int
    seed: int
    fit_seed: int | None  # the trunk's batch order and dropout (None: --seed); the samples keep --seed
    steps: int
    batch_pairs: int
    lr: float
    max_tokens: int
    prompt_tokens: int
    top_layers: int
    length_match: float | None  # sigma of the kernel on the log length difference; None: every pair as it is
    style_terms: tuple[str, ...]  # style terms beyond length fitted with the trunk and dropped (style.STYLE_TERMS)
    folds: tuple[str, ...]
    train_subsets: tuple[str, ...]  # () = every subset trains the trunk
    features: str | None
    out: str | None
    bench: str | None
    threads: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrunkRunConfig:
        """The config of parsed arguments."""
        values = {f.name: getattr(args, f.name) for f in fields(cls)}
        return cls(**{**values, "folds": tuple(values["folds"]), "train_subsets": tuple(values["train_subsets"]),
                      "style_terms": tuple(values["style_terms"])})


def make_parser() -> argparse.ArgumentParser:
    """Arguments of the trunk command."""
    p = argparse.ArgumentParser(prog="python -m mo_explorer.training.trunk", description=__doc__.splitlines()[0])
    p.add_argument("--pairs", required=True, help="Training pairs (train/pairs.jsonl.gz).")
    p.add_argument("--ratings", required=True, help="Ratings; pairs are derived from them as `train` does.")
    p.add_argument("--dev", default=None, help="RM-Bench dev pairs, scored by the models trained on every source.")
    p.add_argument("--pairs-limit", type=int, default=3000, help="Pairs sampled, stratified by subset.")
    p.add_argument("--extra-pairs", type=int, default=0,
                   help="More pairs for the trunk beyond --pairs-limit, drawn (stratified, from the training subsets) "
                        "among the pairs not sampled. The first --pairs-limit pairs are the ones `train` samples with "
                        "the same seed, so its head still finds every pair's out-of-fold quality.")
    p.add_argument("--rating-pairs", type=int, default=600, help="Pairs derived from the sampled ratings.")
    p.add_argument("--code-pairs", type=int, default=0,
                   help="Constructed pairs that teach correct over buggy code: a training answer with a fenced code "
                        "block beats the same answer with the block mutated (pairs.code_mutation_pairs), kept only "
                        "where the mutation falls inside the tokens the trunk reads. Drawn from the chosen answers of "
                        "the training subsets; a fold never trains on those made from its left-out source's answers.")
    p.add_argument("--dev-limit", type=int, default=400, help="Dev pairs sampled, stratified by subset.")
    p.add_argument("--seed", type=int, default=0, help="Sampling and training seed.")
    p.add_argument("--fit-seed", type=int, default=None,
                   help="Seed of the trunk's batch order and dropout only (default: --seed; it starts from MiniLM's "
                        "layers and a zero head whatever the seed). Another fit "
                        "seed on the same pairs gives a second member for `training.trunk_ensemble`: `train`'s "
                        "sample, and so every pair's out-of-fold quality, stays the same.")
    p.add_argument("--steps", type=int, default=400, help="Optimiser steps per trunk fit.")
    p.add_argument("--batch-pairs", type=int, default=8, help="Pairs per step.")
    p.add_argument("--lr", type=float, default=5e-5, help="Learning rate of the trunk layers.")
    p.add_argument("--max-tokens", type=int, default=128, help="Tokens per sequence ([CLS] ... [SEP]).")
    p.add_argument("--prompt-tokens", type=int, default=64, help="Last tokens of the last user turn kept.")
    p.add_argument("--top-layers", type=int, default=2, choices=range(1, 7), metavar="{1..6}",
                   help="MiniLM's top layers trained (of 6); the states below them are cached once.")
    p.add_argument("--length-match", type=float, default=None, metavar="SIGMA",
                   help="Weigh each pair by exp(-d^2 / 2 SIGMA^2), d the log length difference of its answers, so "
                        "that pairs of near-equal length teach the trunk most: they differ in content, where a "
                        "pair of a long and a short answer differs in style too (detail, headings, lists), which the "
                        "length term cannot remove. Each source keeps its weight, and within each subset the "
                        "chosen-longer and chosen-shorter pairs their halves (default: no kernel).")
    p.add_argument("--style-terms", nargs="*", default=[], choices=STYLE_TERMS,
                   help="Style terms fitted with the trunk beside length and dropped when it scores, as the length "
                        "term is (training/style.py). `markdown`: the log count of headings, list items and bold, "
                        "which the training judges reward beyond length and RM-Bench chat does not (default: none).")
    p.add_argument("--folds", nargs="*", default=list(HELD_OUT_SOURCES), help="Sources left out in turn.")
    p.add_argument("--train-subsets", nargs="*", default=[],
                   help="Only pairs of these subsets train the trunk (default: every subset). E.g. the helpfulness "
                        "sources alone, for a `quality` that judges answers to ordinary requests and leaves "
                        "harmful ones to the harmlessness objective. Every fold's pairs are still scored.")
    p.add_argument("--features", default=None, help="Cache root (default: the models' feature cache dir).")
    p.add_argument("--out", default=None, help="Directory for the trunk trained on every source.")
    p.add_argument("--bench", default=None, help="Write the table (markdown) and run facts here.")
    p.add_argument("--threads", type=int, default=1, help="Torch threads.")
    return p


def trunk_spec(cfg: TrunkRunConfig):
    """The TrunkSpec of a run: its token budget and which of MiniLM's 6 layers it trains."""
    from mo_explorer.models import trunk as T

    return T.TrunkSpec(lower_layers=6 - cfg.top_layers, top_layers=cfg.top_layers, max_tokens=cfg.max_tokens,
                       prompt_tokens=cfg.prompt_tokens)


@dataclass
class Run:
    """Everything one comparison needs: pairs, their texts' cached states and frozen features."""

    pairs: list[D.PairRow]
    dev: list[D.PairRow]
    states: dict[str, np.ndarray]  # text key -> (T, D) uint16 bf16 bits
    frozen: dict[str, np.ndarray]  # text key -> (D,) frozen layer-6 mean-pooled state
    encoder: tuple  # (tokenizer, model)


def sample_pairs(cfg: TrunkRunConfig) -> tuple[list[D.PairRow], list[D.PairRow]]:
    """Training pairs (sampled pairs + rating-derived pairs) and the dev sample."""
    pairs_all = D.read_pairs(cfg.pairs)
    first = D.stratified_sample([p.subset for p in pairs_all], cfg.pairs_limit, cfg.seed)
    pairs = [pairs_all[i] for i in first]
    if cfg.extra_pairs:
        taken = set(first.tolist())
        rest = [p for i, p in enumerate(pairs_all)
                if i not in taken and (not cfg.train_subsets or p.subset in cfg.train_subsets)]
        pairs += [rest[i] for i in D.stratified_sample([p.subset for p in rest], cfg.extra_pairs, cfg.seed + 1)]
    ratings_all = D.read_ratings(cfg.ratings)
    ratings = [ratings_all[i] for i in D.sample_ratings(ratings_all, DEFAULT_PER_OBJECTIVE, cfg.seed)]
    pairs += rating_pairs(ratings, cfg.rating_pairs, cfg.seed)
    if cfg.code_pairs:
        pairs += code_pairs(pairs_all, cfg.train_subsets, 4 * cfg.code_pairs, cfg.seed + 5)
    dev: list[D.PairRow] = []
    if cfg.dev:
        dev_all = D.read_pairs(cfg.dev)
        dev = [dev_all[i] for i in D.stratified_sample([p.subset for p in dev_all], cfg.dev_limit, cfg.seed)]
    return pairs, dev


def code_pairs(pairs: list[D.PairRow], train_subsets: tuple[str, ...], limit: int, seed: int) -> list[D.PairRow]:
    """Code-mutation pairs from the chosen answers holding a fenced block, their id prefixed by the source the answer
    came from (`code_origin`), so that a fold leaving that source out does not train on its answers."""
    coded = [p for p in pairs if "```" in p.chosen and (not train_subsets or p.subset in train_subsets)]
    made = code_mutation_pairs([p.prompt for p in coded], [p.chosen for p in coded], limit, seed)
    # code_mutation_pairs' ids are "code-mutation/<index into coded>/<mutation>".
    return [dataclasses.replace(m, id=f"{source_of(coded[int(m.id.split('/')[1])])}|{m.id}") for m in made]


def code_origin(pair: D.PairRow) -> str:
    """The source a code-mutation pair's answer came from ('' for any other pair)."""
    return pair.id.split("|", 1)[0] if pair.subset == CODE_SUBSET and "|" in pair.id else ""


def trains(pair: D.PairRow, train_subsets: tuple[str, ...]) -> bool:
    """Whether a pair trains the trunk: every pair without --train-subsets; else those subsets' and the code pairs."""
    return not train_subsets or pair.subset in train_subsets or pair.subset == CODE_SUBSET


def visible_code_pairs(pairs: list[D.PairRow], ids, limit: int) -> list[D.PairRow]:
    """pairs with at most `limit` code-mutation pairs, only those whose two sides differ in the token ids the trunk
    reads (`ids(prompt, text)`): a mutation past the window would teach it to prefer one of two identical inputs."""
    kept, out = 0, []
    for p in pairs:
        if p.subset == CODE_SUBSET:
            if kept >= limit or ids(p.prompt, p.chosen) == ids(p.prompt, p.rejected):
                continue
            kept += 1
        out.append(p)
    return out


def keys(pairs: list[D.PairRow]) -> tuple[list[str], list[str]]:
    """Text keys of the chosen and the rejected sides."""
    return [text_key(p.prompt, p.chosen) for p in pairs], [text_key(p.prompt, p.rejected) for p in pairs]


def prepare(cfg: TrunkRunConfig, settings: config.Settings, timings: dict) -> Run:
    """Sample pairs, cache their lower-layer states (once), compute the frozen features."""
    from mo_explorer.models import trunk as T
    from mo_explorer.models.embedded import MINILM, resolve_model_path

    pairs, dev = sample_pairs(cfg)
    spec = trunk_spec(cfg)
    tok, model = T.load_encoder(resolve_model_path(MINILM, settings.models.cache_dir), cfg.threads)
    pairs = visible_code_pairs(pairs, lambda q, r: T.budgeted_ids(tok, q, r, spec), cfg.code_pairs)
    cache = StateCache(cfg.features or settings.models.features_dir,
                       {"name": MINILM, "layout": "budgeted", **spec.to_json()})
    items = {text_key(p.prompt, t): (p.prompt, t) for p in pairs + dev for t in (p.chosen, p.rejected)}
    lower = T.LowerEncoder(model, spec)
    start = time.perf_counter()
    n_new = cache.fill(items, lambda batch: lower.states([T.budgeted_ids(tok, q, r, spec) for q, r in batch]))
    timings["cache_s"], timings["cache_new"], timings["texts"] = time.perf_counter() - start, n_new, len(items)
    start = time.perf_counter()
    names = list(items)
    pooled, _ = T.score_states(T.Trunk.from_encoder(model, spec), cache.get(names))
    timings["frozen_features_s"] = time.perf_counter() - start
    return Run(pairs, dev, {k: cache.states[k] for k in names}, dict(zip(names, pooled)), (tok, model))


def pair_weights(pairs: list[D.PairRow], length_match: float | None = None) -> np.ndarray:
    """(n,) weights: each source weighs the same; within each subset chosen-longer and -shorter pairs too. With
    `length_match` (sigma), pairs far apart in length weigh less (a Gaussian kernel on the log length difference)."""
    kernel = None if length_match is None else np.exp(-log_len_diff(pairs) ** 2 / (2 * length_match**2))
    w = length_balance(pairs, [p.subset for p in pairs], kernel)
    src = np.array([source_of(p) or p.subset for p in pairs])
    for s in set(src):
        w[src == s] /= w[src == s].sum()
    return w * len(w) / w.sum()


def fit_and_score(run: Run, cfg: TrunkRunConfig, train: list[D.PairRow], held: list[D.PairRow]) -> dict:
    """Both models fitted on `train`, scored on `held` -> {model: (score chosen (n,), score rejected (n,))}, report."""
    from mo_explorer.models import trunk as T

    w, style = pair_weights(train, cfg.length_match), style_diffs(train, cfg.style_terms)
    dl = style[:, 0]  # the probe keeps the length term alone
    log.info("%d training pairs, %.0f effective (weights' sum^2 / sum of squares)", len(w), w.sum()**2 / (w**2).sum())
    kc, kr = keys(train)
    hc, hr = keys(held)
    start = time.perf_counter()
    probe = fit_probe(np.stack([run.frozen[k] for k in kc]), np.stack([run.frozen[k] for k in kr]), dl, w,
                      [D.prompt_key(p.prompt) for p in train], seed=cfg.seed)
    probe_s = time.perf_counter() - start
    out = {"probe": (probe.score(np.stack([run.frozen[k] for k in hc])),
                     probe.score(np.stack([run.frozen[k] for k in hr])))}
    trunk = T.Trunk.from_encoder(run.encoder[1], trunk_spec(cfg), style_terms=style.shape[1])
    settings = T.FitSettings(steps=cfg.steps, batch_pairs=cfg.batch_pairs, lr=cfg.lr,
                             seed=cfg.seed if cfg.fit_seed is None else cfg.fit_seed)
    start = time.perf_counter()
    report = T.fit_pairs(trunk, [run.states[k] for k in kc], [run.states[k] for k in kr], style, w, settings)
    report["fit_s"] = time.perf_counter() - start
    _, qc = T.score_states(trunk, [run.states[k] for k in hc])
    _, qr = T.score_states(trunk, [run.states[k] for k in hr])
    out["trunk"] = (qc, qr)
    return {"scores": out, "trunk": trunk, "probe_model": probe,
            "report": {**report, "probe_beta": probe.beta, "probe_l2": probe.l2, "probe_fit_s": probe_s}}


def summary(pairs: list[D.PairRow], sc: np.ndarray, sr: np.ndarray) -> dict:
    """Raw accuracy, its length halves and the length-balanced mean of scores on pairs."""
    correct = pair_correct(sc, sr)
    lb = length_balanced(correct, *word_lengths(pairs))
    return {"n": len(pairs), "accuracy": float(correct.mean()), **lb}


def split(pairs: list[D.PairRow], source: str, train_subsets: tuple[str, ...] = ()
          ) -> tuple[list[D.PairRow], list[D.PairRow]]:
    """(training pairs, held-out pairs) of a fold, as validate.fit_without splits them; with `train_subsets`, only
    pairs of those subsets train."""
    held = [p for p in pairs if source_of(p) == source]
    train = [p for p in pairs if source_of(p) != source and code_origin(p) != source
             and not (source == "alpacaeval" and p.subset == JUDGED_BY_ALPACAEVAL)
             and trains(p, train_subsets)]
    return train, held


def _fit_once(run: Run, cfg: TrunkRunConfig, train: list[D.PairRow], held: list[D.PairRow], fits: dict) -> dict:
    """fit_and_score, fitting once per distinct training set (seeded: a refit would give the same trunk); a fold
    whose left-out source trains nothing (with --train-subsets) reuses the trunk of every source."""
    key = tuple(p.id for p in train)
    if key not in fits:
        fits[key] = fit_and_score(run, cfg, train, held)
        return fits[key]
    from mo_explorer.models import trunk as T

    fitted = fits[key]
    hc, hr = keys(held)
    scores = {"trunk": (T.score_states(fitted["trunk"], [run.states[k] for k in hc])[1],
                        T.score_states(fitted["trunk"], [run.states[k] for k in hr])[1])}
    if "probe_model" in fitted:
        scores["probe"] = (fitted["probe_model"].score(np.stack([run.frozen[k] for k in hc])),
                           fitted["probe_model"].score(np.stack([run.frozen[k] for k in hr])))
    return {**fitted, "scores": scores}


def by_subset(pairs: list[D.PairRow], scores: dict) -> dict:
    """{subset: {model: summary, "longer_wins": share}} of scored pairs, where they span several subsets."""
    names = np.array([p.subset for p in pairs])
    out = {}
    for s in sorted(set(names)) if len(set(names)) > 1 else []:
        sel = np.flatnonzero(names == s)
        sub = [pairs[i] for i in sel]
        out[s] = {m: summary(sub, scores[m][0][sel], scores[m][1][sel]) for m in MODELS}
        out[s]["longer_wins"] = float(longer_wins(sub).mean())
    return out


def loso(run: Run, cfg: TrunkRunConfig, fits: dict | None = None) -> dict:
    """Each fold's summaries per model, the longer-wins baseline, and the fit reports."""
    folds = {}
    fits = {} if fits is None else fits
    for source in cfg.folds:
        train, held = split(run.pairs, source, cfg.train_subsets)
        if not held:
            continue
        log.info("fold %s: %d training pairs, %d held out", source, len(train), len(held))
        fitted = _fit_once(run, cfg, train, held, fits)
        folds[source] = {m: summary(held, *fitted["scores"][m]) for m in MODELS}
        folds[source]["longer_wins"] = float(longer_wins(held).mean())
        folds[source]["subsets"] = by_subset(held, fitted["scores"])
        folds[source]["report"] = fitted["report"]
        hc, hr = keys(held)  # out-of-fold quality: what a gate trained on these pairs may read
        folds[source]["held_quality"] = dict(zip(hc + hr, np.concatenate(fitted["scores"]["trunk"]).tolist()))
        folds[source]["trained_keys"] = set(sum(keys(train), []))
        log.info("fold %s: %s", source, json.dumps({m: folds[source][m] for m in MODELS}))
    return folds


def merge_out_of_fold(folds: dict) -> dict[str, float]:
    """{text key: quality} over the folds, each text from a fold whose trunk never trained on it. A text can be in
    two sources (an AlpacaEval answer is also a rated `ratings-helpfulness` row): the `ratings` fold's trunk trained
    on the AlpacaEval pairs, so only the `alpacaeval` fold (which drops both) may score it."""
    out: dict[str, float] = {}
    for f in folds.values():
        for k, v in f["held_quality"].items():
            if k not in f["trained_keys"]:
                out.setdefault(k, v)
    return out


def on_dev(run: Run, cfg: TrunkRunConfig, fits: dict | None = None) -> dict:
    """Both models trained on every source, scored on the dev sample, per subset; the trunk itself."""
    train = [p for p in run.pairs if trains(p, cfg.train_subsets)]
    fitted = _fit_once(run, cfg, train, run.dev or run.pairs[:1], {} if fits is None else fits)
    result: dict = {"report": fitted["report"], "fitted": fitted["trunk"]}
    if run.dev:
        names = np.array([p.subset for p in run.dev])
        for m in MODELS:
            sc, sr = fitted["scores"][m]
            result[m] = {"all": summary(run.dev, sc, sr)}
            for s in sorted(set(names)):
                sel = np.flatnonzero(names == s)
                result[m][s] = summary([run.dev[i] for i in sel], sc[sel], sr[sel])
    return result


def time_scoring(run: Run, trunk, cfg: TrunkRunConfig, repeats: int = 5) -> dict:
    """Seconds to score 8 answers of >= 128 tokens (median of repeats): the trunk alone, and full MiniLM."""
    from mo_explorer.models import trunk as T

    tok, model = run.encoder
    spec = trunk_spec(cfg)
    scorer = T.TrunkScorer(trunk, spec, tok, model)
    words = "the quick brown fox jumps over the lazy dog while the cat sleeps".split()
    answers = [" ".join(words[(i + j) % len(words)] for j in range(140)) for i in range(8)]
    prompt = [{"role": "user", "content": "Plan a relaxed weekend in Lisbon for two people."}]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scorer.encode(prompt, answers)
        times.append(time.perf_counter() - start)
    return {"trunk_8x128_s": float(np.median(times))}


def _pct(x: float) -> str:
    return "" if x != x else f"{100 * x:.1f}"


def markdown(folds: dict, dev: dict) -> str:
    """Side-by-side table: per left-out source and on dev subsets, raw and length-balanced, probe vs trunk."""
    head = ("| pairs | n | longer wins | probe raw | probe chosen longer / shorter | **probe length-balanced** | "
            "trunk raw | trunk chosen longer / shorter | **trunk length-balanced** |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]

    def row(name: str, cell: dict, longer: str) -> str:
        parts = [f"| {name} | {cell['probe']['n']} | {longer}"]
        for m in MODELS:
            c = cell[m]
            parts.append(f"{_pct(c['accuracy'])} | {_pct(c['longer'])} / {_pct(c['shorter'])} | "
                         f"**{_pct(c['balanced'])}**")
        return " | ".join(parts) + " |"

    for source, f in folds.items():
        lines.append(row(f"left out: {source}", f, _pct(f["longer_wins"])))
        for subset, cell in f.get("subsets", {}).items():
            lines.append(row(f"&nbsp;&nbsp;of which {subset}", cell, _pct(cell["longer_wins"])))
    for stat, fn in (("mean", np.mean), ("worst", np.min)) if folds else ():  # `--folds` with none: dev only
        cells = [f"| LOSO {stat} | | "]
        for m in MODELS:
            cells.append(f"{_pct(float(fn([f[m]['accuracy'] for f in folds.values()])))} | | "
                         f"**{_pct(float(fn([f[m]['balanced'] for f in folds.values()])))}**")
        lines.append(" | ".join(cells) + " |")
    if "probe" in dev:
        for s in dev["probe"]:
            lines.append(row(f"RM-Bench dev: {s}", {m: dev[m][s] for m in MODELS}, ""))
    return "\n".join(lines)


def verdict(folds: dict) -> dict:
    """Does the trunk beat the probe on the length-balanced LOSO mean and worst?"""
    if not folds:
        return {"trunk_wins": None, "folds": 0}
    out = {}
    for m in MODELS:
        values = [f[m]["balanced"] for f in folds.values()]
        out[m] = {"mean": float(np.mean(values)), "worst": float(np.min(values))}
    out["trunk_wins"] = bool(out["trunk"]["mean"] > out["probe"]["mean"]
                             and out["trunk"]["worst"] > out["probe"]["worst"])
    return out


def main(args: argparse.Namespace) -> int:
    """Cache, LOSO, dev, timing; print the table; write the trunk (--out) and the bench notes (--bench)."""
    cfg = TrunkRunConfig.from_args(args)
    settings = config.Settings.from_env()
    timings: dict = {}
    start = time.perf_counter()
    run = prepare(cfg, settings, timings)
    fits: dict = {}
    folds = loso(run, cfg, fits)
    dev = on_dev(run, cfg, fits)
    timings.update(time_scoring(run, dev["fitted"], cfg))
    timings["total_s"] = time.perf_counter() - start
    timings["from_nothing_s"] = timings["cache_s"] + timings["frozen_features_s"] + dev["report"]["fit_s"]
    table, won = markdown(folds, dev), verdict(folds)
    print(table)
    print(json.dumps({"verdict": won, "timings": timings, "full_fit": dev["report"]}, indent=2))
    if cfg.out:
        from mo_explorer.models import trunk as T

        spec = trunk_spec(cfg)
        T.save_trunk(dev["fitted"], spec, cfg.out, {"verdict": won, "fit": dev["report"], "config": vars(args)})
        held = merge_out_of_fold(folds)
        np.savez(Path(cfg.out) / "out_of_fold.npz", keys=np.array(list(held)), quality=np.array(list(held.values())))
    if cfg.bench:
        Path(cfg.bench).write_text(json.dumps({"table": table, "verdict": won, "timings": timings,
                                               "folds": {s: {k: v for k, v in f.items()
                                                             if k not in ("held_quality", "trained_keys")}
                                                         for s, f in folds.items()},
                                               "full_fit": dev["report"], "config": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(main(make_parser().parse_args()))

