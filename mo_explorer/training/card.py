"""MODEL_CARD.md for a head directory, written from its config.json and the measured results (numpy-free)."""

from __future__ import annotations

import json
from pathlib import Path

from mo_explorer.training.recipe import CANDIDATES_DEBIAS

MEANINGS = {
    "helpfulness": "How likely a strong judge prefers this response to GPT-4-turbo's (regressed on the logit of "
                   "AlpacaEval 2.0 win probabilities).",
    "overall": "Overall quality as rated by GPT-4 rubrics (Prometheus, Auto-J).",
    "harmlessness": "Refuses clearly unsafe requests (XSTest v2 unsafe prompts: 1 = full refusal).",
    "compliance": "Answers safe requests instead of over-refusing (XSTest v2 safe prompts: 1 = full compliance).",
    "verbosity": "Measured length: log(1 + words) of the response. Shown, not rewarded (its column of the "
                 "transform is zero and the gate gives it no weight), and every other objective is debiased "
                 "against it (or, for the trunk's `quality` with `--no-debias-quality`, by the length term the "
                 "trunk is trained with).",
    "verbosity-in-score": "Measured length: log(1 + words) of the response. Every other objective is debiased "
                          "against it, and the gate gives it the weight the training pairs support for the prompt "
                          "at hand (`--verbosity-in-score`).",
    "preference": "A Bradley-Terry linear head fitted on the training pairs' feature differences "
                  "(`--preference-l2`); the gate sees its cross-fitted margins.",
    "quality": "The score of a trained trunk (MiniLM's layers 5-6 fine-tuned with a Bradley-Terry loss on the "
               "training pairs, a length term fitted with it and dropped; models/trunk.py). The gate learned it on "
               "each pair's out-of-fold quality (the trunk of the fold that left the pair's source out).",
    "likelihood": "Mean token log-probability of the response under SmolLM2-135M-Instruct (the generator), "
                  "given the prompt: fluency and plausibility as the generator sees them.",
}

LICENCES = """| source | used for | licence as stated |
|---|---|---|
| AlpacaEval 2.0 (tatsu-lab/alpaca_eval, cd543a1) | helpfulness ratings, pairs | CC BY-NC 4.0 (**non-commercial**) |
| XSTest v2 (exaggerated-safety, d7bb5bd) | harmlessness, compliance | prompts CC-BY-4.0; completions: makers' terms |
| Prometheus eval sets (prometheus-eval, dcfb442) | overall ratings | Apache-2.0 |
| Auto-J single ratings (GAIR-NLP/auto-j, 2ae17a3) | overall ratings | none stated |
| RMB (Zhou-Zoey/RMB-Reward-Model-Benchmark, 2be3180) | pairs | none stated |
| RM-Bench (THU-KEG/RM-Bench, 73c52d7) | dev evaluation only (never trained on) | none stated |

Because of the AlpacaEval part, **this head is for non-commercial use**. The backbones are Apache-2.0
(SmolLM2-135M-Instruct, all-MiniLM-L6-v2)."""


def pct(x: float) -> str:
    """A proportion as a percentage with one decimal ("n/a" for NaN: a length half with no pairs)."""
    return "n/a" if x != x else f"{100 * x:.1f}"


def results_table(res: dict) -> str:
    """Per-subset, overall and easy/normal/hard accuracy with 95% intervals (from RESULTS.json)."""
    lines = ["| subset | n | accuracy | 95% interval | length-balanced | longer wins |", "|---|---|---|---|---|---|"]
    longer = res.get("longer_wins", {})
    balanced = res.get("length_balanced", {}).get("subsets", {})
    for name, s in res["subsets"].items():
        lines.append(f"| {name} | {s['n']} | {pct(s['accuracy'])} | {pct(s['ci95'][0])}-{pct(s['ci95'][1])} | "
                     f"{pct(balanced[name]['balanced']) if name in balanced else ''} | "
                     f"{pct(longer[name]) if name in longer else ''} |")
    lb = res.get("length_balanced", {})
    lines.append(f"| **overall** | {res['n']} | **{pct(res['accuracy'])}** | {pct(res['ci95'][0])}-"
                 f"{pct(res['ci95'][1])} | {pct(lb['balanced']) if 'balanced' in lb else ''} | "
                 f"{pct(longer['overall']) if 'overall' in longer else ''} |")
    for name, s in res.get("difficulty", {}).items():
        lines.append(f"| RM-Bench {name} | {s['n']} | {pct(s['accuracy'])} | {pct(s['ci95'][0])}-"
                     f"{pct(s['ci95'][1])} | | |")
    return "\n".join(lines)


def agreement_table(res: dict) -> str:
    """How often each objective alone prefers the chosen response, per subset."""
    agree = res.get("objective_agreement", {})
    if not agree:
        return ""
    subsets = list(res["subsets"])
    lines = ["| objective | overall | " + " | ".join(subsets) + " |", "|---" * (len(subsets) + 2) + "|"]
    for name, a in agree.items():
        lines.append(f"| {name} | {pct(a['accuracy'])} | " + " | ".join(pct(a["subsets"][s]) for s in subsets)
                     + " |")
    return "\n".join(lines)


NOTES_FILE = "CARD_NOTES.md"  # hand-written: how the shipped configuration was chosen, caveats
ABLATION_FILE = "ablation.md"  # written by `python -m mo_explorer.training.ablate --card-dir`
LOSO_FILE = "loso.md"  # written by `train --validate loso`: the leave-one-source-out table


def ablation_section(ablation: str, backbones: str | None = None) -> str:
    """The card's ablation and backbone-comparison sections (Markdown)."""
    parts = ["## Ablation (dev, 95% Wilson intervals)", "", ablation.strip()]
    if backbones:
        parts += ["", "## Backbone comparison", "", backbones.strip()]
    return "\n".join(parts)


def write_card(head_dir: str | Path, dev: dict | None = None, ablation: str | None = None,
               backbones: str | None = None, command: str = "", eval_command: str = "") -> Path:
    """Write head_dir/MODEL_CARD.md and return its path.

    Retraining rewrites the card, so two inputs live beside it in the head directory and are carried into every
    rewrite: CARD_NOTES.md (a "Shipped configuration" section written by hand) and ablation.md (the last
    ablation run, with the command that produced it), used when `ablation` is not given.
    """
    head_dir = Path(head_dir)
    cfg = json.loads((head_dir / "config.json").read_text())
    report = cfg.get("extra", {}).get("training", {})
    parts = [f"# mo-explorer embedded reward head ({cfg['backbone']['name']})", "",
             "An ArmoRM-style multi-objective reward model trained on a CPU: a frozen backbone, one linear head per "
             "objective (ridge), ArmoRM's verbosity debiasing as a transform matrix, and a gating network on the "
             "prompt trained with the Bradley-Terry loss. "
             "`score = sum(gating * (rewards @ transform))`; rewards are standardised (0 = an average training "
             "response, 1 = one standard deviation better).", ""]
    if "quality" in cfg.get("objectives", []):
        parts[-1:] = ["One objective, `quality`, is not a ridge head: it is the score of MiniLM's top layers "
                      "fine-tuned on preference pairs (`trunk.safetensors` beside the head, `training/trunk.py`).", ""]
    notes = head_dir / NOTES_FILE
    if notes.is_file():
        parts += ["## Shipped configuration", "", notes.read_text().strip(), ""]
    parts += feature_section(cfg) + objectives_section(cfg, report) + gate_section(report.get("gate", {}))
    parts += ["", "## Data and licences", "", LICENCES]
    if dev:
        parts += dev_section(dev, eval_command)
    if (head_dir / LOSO_FILE).is_file():
        parts += ["", "## Leave-one-source-out validation", "", (head_dir / LOSO_FILE).read_text().strip()]
    if ablation is None and (head_dir / ABLATION_FILE).is_file():
        parts += ["", (head_dir / ABLATION_FILE).read_text().strip()]
    elif ablation:
        parts += ["", ablation_section(ablation, backbones)]
    if report.get("train_seconds"):
        parts += ["", "## Reproduce", "",
                  f"Training took {report['train_seconds'] / 60:.1f} min on a shared 2-core CPU "
                  f"(feature extraction {report.get('features_seconds', 0) / 60:.1f} min of it, most of it cached "
                  "and resumable under `<cache-dir>/features`).", ""]
        trunk = trunk_command(head_dir, command)
        if trunk:
            parts += ["The trunk first (its `--out` is the `--trunk` of the head's command):",
                      "", "```", trunk, "```", "", "Then the head:", ""]
        if command:
            parts += ["```", command, "```"]
    path = head_dir / "MODEL_CARD.md"
    path.write_text("\n".join(parts) + "\n")
    return path


def trunk_command(head_dir: Path, command: str | None) -> str | None:
    """The `python -m mo_explorer.training.trunk ...` command of the trunk stored beside a head (from its trunk.json),
    writing where the head's command reads it (its --trunk); for an ensemble, one command per member and the one
    that combines them. None without a trunk."""
    path = head_dir / "trunk.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text()).get("report", {})
    run = report.get("config", {})
    if not run:
        return None
    words = command.split() if command else []
    out = words[words.index("--trunk") + 1] if "--trunk" in words[:-1] else run.get("out")
    members = report.get("ensemble", [])
    if not members:
        return _trunk_line(run, str(out))
    dirs = [f"{out}-{i}" for i in range(len(members))]
    lines = [_trunk_line(m, d) for m, d in zip(members, dirs)]
    return "\n".join(lines + [f"python -m mo_explorer.training.trunk_ensemble --members {' '.join(dirs)} --out {out}"])


def _trunk_line(run: dict, out: str) -> str:
    parts = ["python -m mo_explorer.training.trunk"]
    for key, value in run.items():
        if key in ("out", "bench", "features") or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return " ".join(parts + ["--out", out])


def feature_section(cfg: dict) -> list[str]:
    """The card's "Backbone and features" lines, from a head's config.json."""
    b = cfg["backbone"]
    if b["pooling"] == "mean" and b.get("layout") == "budgeted":
        line = (f"- Backbone: `{b['name']}`, mean pooling over at most 256 tokens: the last "
                f"{b['max_prompt_tokens']} tokens of the last user turn, then the response (so the response "
                "is always read); the prompt feature reads every user turn, keeping the last 254 tokens.")
    elif b["pooling"] == "mean":
        line = (f"- Backbone: `{b['name']}`, mean pooling over at most 256 tokens of the last user turn "
                "followed by the response (the prompt feature: the last user turn alone).")
    else:
        layer = cfg.get("extra", {}).get("head_layer", b["layers"][-1])
        line = (f"- Backbone: `{b['name']}`, hidden state after layer {layer} (of {len(b['layers'])} captured "
                f"in the same pass: {b['layers']}) at the last token of the chat-templated prompt + response; "
                f"prompt truncated to its last {b['max_prompt_tokens']} tokens, response to its first "
                f"{b['max_response_tokens']} tokens (closing tokens kept).")
    parts = ["## Backbone and features", "", line,
             "- Gate input: the prompt's own feature (it never sees the response)."]
    measured = cfg.get("extra", {}).get("measured", {})
    if "likelihood" in measured:
        m = measured["likelihood"]["model"]
        parts.append(f"- Likelihood: `{m['name']}` run to full depth in fp32, mean log-prob over the first "
                     f"{m['max_response_tokens']} response tokens (prompt <= {m['max_prompt_tokens']} tokens).")
    return parts


def objectives_section(cfg: dict, report: dict) -> list[str]:
    """The objectives table (meaning, stage-1 rows and Spearman, held-out length-balanced accuracy) and the
    verbosity debiasing table."""
    trust = cfg.get("extra", {}).get("trust", {}).get("objectives", {})
    parts = ["", "## Objectives", "",
             "| objective | meaning | stage-1 rows | validation Spearman | left-out sources, length-balanced |",
             "|---|---|---|---|---|"]
    for name in cfg["objectives"]:
        s1 = report.get("stage1", {}).get(name)
        rows, rho = (s1["rows"], f"{s1['val_spearman']:.3f}") if s1 else ("measured", "")
        key = "verbosity-in-score" if name == "verbosity" and report.get("verbosity_in_score") else name
        held = f"{pct(trust[name])}" if trust.get(name) is not None else ""
        parts.append(f"| {name} | {MEANINGS.get(key, '')} | {rows} | {rho} | {held} |")
    debias = report.get("debias", {})
    if debias and all(v.get("on") == CANDIDATES_DEBIAS for v in debias.values()):
        parts += ["", "Verbosity debiasing within prompts (`--debias-candidates`: the embedded generator's answers to "
                      "training prompts; Spearman of each objective with verbosity among the answers to one prompt):",
                  "", "| objective | before | after | lambda |", "|---|---|---|---|"]
        parts += [f"| {k} | {v['before']:+.3f} | {v['after']:+.3f} | {v['lambda']:.3f} |" for k, v in debias.items()]
    elif debias:
        parts += ["", "Verbosity debiasing (Spearman with verbosity on the training responses; within pairs: of the "
                      "difference between two answers to one prompt with their difference in verbosity):", "",
                  "| objective | before | after | within pairs, before | within pairs, after | lambda |",
                  "|---|---|---|---|---|---|"]
        for k, v in debias.items():
            wp = v.get("within_pairs") or ({"before": v["before"], "after": v["after"]} if v.get("on") else None)
            row = (f"{wp['before']:+.3f} | {wp['after']:+.3f}" if wp else " | ")
            parts.append(f"| {k} | {v['before']:+.3f} | {v['after']:+.3f} | {row} | {v['lambda']:.3f} |")
    return parts


def gate_section(gate: dict) -> list[str]:
    """What the gate trained on, where it stopped, and how concentrated its weights are per training subset."""
    if not gate:
        return []
    parts = ["", f"Gate: trained on {sum(gate.get('pairs', {}).values())} pairs "
                 f"({', '.join(f'{k} {v}' for k, v in sorted(gate.get('pairs', {}).items()))}), each subset "
                 f"weighted equally; train accuracy {pct(gate['train_accuracy'])}, "
                 + (f"held-out pairs (those of 10% of the prompts, which chose each gate's step: "
                    f"{', '.join(map(str, gate['best_steps']))} of {gate['history'][-1]['step']}) "
                    if gate.get("best_steps") else "held-out 10% ")
                 + f"{pct(gate['val_accuracy'])}."]
    if "concentration" in gate:
        parts += ["", "Gate concentration (mean of the largest gate weight, per training subset; 1/k = "
                      "uniform, 1 = collapsed):", "", "| subset | mean max weight | top objective |", "|---|---|---|"]
        parts += [f"| {k} | {v['mean_max']:.2f} | {v['top']} |" for k, v in gate["concentration"].items()]
    return parts


def dev_section(dev: dict, eval_command: str) -> list[str]:
    """RM-Bench dev results: per subset raw and length-balanced, calibration, length correlation, objectives."""
    lb = dev.get("length_balanced", {})
    return ["", "## Results on dev (RM-Bench, stratified sample)", "",
            f"`{eval_command}`" if eval_command else "", "", results_table(dev), "",
            f"Length-balanced (the mean of the accuracy where the chosen answer is the longer, "
            f"{pct(lb.get('longer', float('nan')))}, and where it is the shorter, "
            f"{pct(lb.get('shorter', float('nan')))}): **{pct(lb.get('balanced', float('nan')))}**.", "",
            f"Expected calibration error of the Bradley-Terry probability: {dev['ece']:.3f}. "
            f"Spearman correlation of the score with response length (words) over all scored responses: "
            f"{dev.get('length_spearman', float('nan')):+.3f}.", "",
            "Each objective alone (how often it prefers the chosen response):", "", agreement_table(dev)]
