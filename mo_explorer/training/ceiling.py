"""How far any gate over the recipe's objectives could go on each source: the ceiling behind the LOSO table.

Issue 15 asks the shipped head to beat "longer response wins" on every left-out source. The leave-one-source-out
table says where it does not; it cannot say whether a better gate could, or whether the objectives themselves lack
the signal. This command separates the two. For each source S it takes the heads of S's fold (fitted without S,
exactly as `--validate loso` fits them) and scores S's own pairs four ways, each by 5-fold cross-validation on S
with folds by prompt (no prompt in both halves):

- **in-source gate**: the recipe's gate (same architecture, steps, entropy bonus, members, early stopping when the
  recipe uses it) trained on S itself: what a gate reading the prompt gets from these objectives on S without
  having to transfer;
- **fixed weights >= 0**: the same gate fed a constant, i.e. the best single softmax weighting for all of S;
- **fixed weights, any sign**: a linear Bradley-Terry probe on the objectives' differences (signs free, which the
  softmax gate cannot do);
- **each objective alone** (no fitting; the best one is chosen after looking, so it is slightly optimistic).

Reading it: LOSO < in-source gate is what transfer costs (the gate did not learn S's weighting from the other
sources); in-source gate < longer wins means no gate over these objectives beats length on S, and the lever is a new
signal (objective or backbone), not the gate. The `ratings` source's heads were fitted on the rows its pairs come
from, so its ceiling flatters them. Nothing here is selected on RM-Bench: training on dev would be training on it.

Usage: python -m mo_explorer.training.ceiling [train options] [--ceiling-out ceiling.json]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from mo_explorer import config
from mo_explorer.training import data as D
from mo_explorer.training import recipe, stage2, train, validate
from mo_explorer.training.ablate import probe_accuracy
from mo_explorer.training.metrics import grouped_folds, length_balanced, pair_correct
from mo_explorer.training.scoring import score_variant
from mo_explorer.training.sources import word_lengths

log = logging.getLogger(__name__)

FOLDS = 5


def gate_cv_accuracy(prompt_states: np.ndarray, diff: np.ndarray, mask: np.ndarray, groups: list[str],
                     gate_cfg, folds: int = FOLDS, seed: int = 0, early_stop: bool = False) -> float:
    """Grouped k-fold accuracy of a gate trained on pairs' prompt states (n, D) and reward differences (n, K);
    with early_stop, as `train --gate-early-stop` trains it (on the training folds' pairs: 10% of their prompts
    held out to choose the step)."""
    from mo_explorer.models.gate_trainer import gate_weights, train_gate

    fold = grouped_folds(groups, folds, seed)
    correct = np.zeros(len(diff))
    for f in range(folds):
        tr, te = fold != f, fold == f
        if not te.any() or not tr.any():
            continue
        val = None
        if early_stop:  # as train.fit holds out prompts, within this fold's training pairs
            inner = np.flatnonzero(tr)
            stop, early = stage2.held_out([groups[i] for i in inner], True, np.random.default_rng(seed + f))
            if early:
                tr = np.zeros(len(diff), bool)
                tr[inner[~stop]] = True
                v = inner[stop]
                val = (prompt_states[v], diff[v], np.ones(len(v)), mask[v])
        gate, _ = train_gate(prompt_states[tr], diff[tr], gate_cfg, None, mask[tr], val)
        g = gate_weights(gate, prompt_states[te])
        g = g * mask[te] / np.maximum((g * mask[te]).sum(1, keepdims=True), 1e-12) * g.sum(1, keepdims=True)
        correct[te] = pair_correct(np.sum(g * diff[te], axis=1), np.zeros(int(te.sum())))
    return float(correct.mean())


def single_objectives(diff: np.ndarray, objectives: tuple[str, ...]) -> dict[str, float]:
    """Accuracy of each objective alone (ties count half)."""
    return {name: float(pair_correct(diff[:, j], np.zeros(len(diff))).mean()) for j, name in enumerate(objectives)}


def source_ceiling(prep: train.Prepared, cfg: train.TrainConfig, source: str, fit) -> dict:
    """The LOSO cell of `source` and its in-source ceilings (see the module doc); {"n": 0} if it has no pairs."""
    fitted = validate.fit_without(prep, cfg, source, fit)
    if fitted is None:
        return {"n": 0}
    held, params, gate = fitted
    chosen, rejected = prep.chosen.take(held), prep.rejected.take(held)
    sc, sr, _, _ = score_variant(params, gate, chosen, rejected)
    diff = recipe.pair_reward_diff(params, chosen, rejected)
    mask = stage2.measured_mask(params.objectives, chosen, rejected, params.transform)
    groups = [D.prompt_key(prep.pairs[i].prompt) for i in held]
    gate_cfg = stage2.gate_config(cfg, params.objectives)
    states = chosen.prompt_states
    alone = single_objectives(diff, params.objectives)
    best = max(alone, key=alone.get)
    len_c, len_r = word_lengths([prep.pairs[i] for i in held])
    row = {"n": len(held), "loso": float(pair_correct(sc, sr).mean()),
           "loso_balanced": length_balanced(pair_correct(sc, sr), len_c, len_r)["balanced"],
           "in_source_gate": gate_cv_accuracy(states, diff, mask, groups, gate_cfg, seed=cfg.seed,
                                              early_stop=cfg.gate_early_stop),
           "fixed_nonnegative": gate_cv_accuracy(np.zeros((len(held), 1)), diff, mask, groups, gate_cfg,
                                                 seed=cfg.seed, early_stop=cfg.gate_early_stop),
           "fixed_any_sign": probe_accuracy(diff, groups, seed=cfg.seed),
           "alone": alone, "best_alone": best,
           "longer_wins": float(validate.longer_wins([prep.pairs[i] for i in held]).mean()),
           "objectives": list(params.objectives)}
    log.info("%s: LOSO %.3f, in-source gate %.3f, fixed >=0 %.3f, fixed any sign %.3f, best alone %s %.3f, "
             "longer wins %.3f", source, row["loso"], row["in_source_gate"], row["fixed_nonnegative"],
             row["fixed_any_sign"], best, alone[best], row["longer_wins"])
    return row


def run(args: argparse.Namespace, settings: config.Settings) -> dict:
    """Every source's row, the Markdown table and the command that made it."""
    cfg = train.TrainConfig.from_args(args)
    prep = train.prepare(cfg, settings)

    def fit(p, c, subsets):
        return train.fit(p, c, use_likelihood=c.likelihood_pairs > 0, subsets=subsets)

    rows = {s: source_ceiling(prep, cfg, s, fit) for s in validate.HELD_OUT_SOURCES}
    command = train.command_line(cfg, skip=("out",)).replace("mo_explorer train", "mo_explorer.training.ceiling")
    return {"rows": rows, "markdown": markdown(rows), "command": command, "seed": cfg.seed}


def markdown(rows: dict[str, dict]) -> str:
    """One row per source: pairs, the LOSO cell, the three ceilings, the best objective alone, longer wins."""
    lines = ["| source | pairs | LOSO (gate from the other sources) | LOSO length-balanced | in-source gate | "
             "fixed weights >= 0 | fixed weights, any sign | best objective alone | longer wins |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        if not r["n"]:
            lines.append(f"| {name} | 0 | | | | | | | |")
            continue
        lines.append(f"| {name} | {r['n']} | {100 * r['loso']:.1f} | {100 * r['loso_balanced']:.1f} | "
                     f"{100 * r['in_source_gate']:.1f} | "
                     f"{100 * r['fixed_nonnegative']:.1f} | {100 * r['fixed_any_sign']:.1f} | "
                     f"{r['best_alone']} {100 * r['alone'][r['best_alone']]:.1f} | {100 * r['longer_wins']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    """Command-line entry: the train options, plus --ceiling-out."""
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(prog="mo_explorer.training.ceiling")
    train.configure(parser)
    parser.add_argument("--ceiling-out", default=None, help="Also write the result as JSON here.")
    args = parser.parse_args()
    result = run(args, config.Settings.from_env())
    if args.ceiling_out:
        Path(args.ceiling_out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"`{result['command']}`\n\n{result['markdown']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
