"""`python -m mo_explorer.training.gate_check`: what the gate weighs on requests of our own, per request class.

The gate reads the prompt only, so a request and any answer give its weights. Shares are the gate's weights
normalised to sum to 1. `data/gate_requests.json` holds the requests (everyday, harmful, coding, factual) and the
shares we expect of each class; the command prints the table and every request, and exits 1 when a class misses
what is expected of it (the test `tests/test_gate_sanity.py` runs the same check on the shipped head).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from mo_explorer import config

REQUESTS = config.REPO_ROOT / "data" / "gate_requests.json"
ANY_ANSWER = "OK."  # the gate never reads the answer


def gate_shares(model, prompts: list[str]) -> np.ndarray:
    """The gate's weights (n, k) for each prompt, normalised to sum to 1 per prompt."""
    rows = []
    for prompt in prompts:
        # A stand-in log-prob: the answer's likelihood would cost a generator pass and the gate never reads it.
        g = np.asarray(model.score(prompt, [ANY_ANSWER], mean_logprob=np.zeros(1)).gating, np.float64)
        g = g[0] if g.ndim > 1 else g
        rows.append(g / g.sum())
    return np.stack(rows)


def class_shares(model, requests: dict[str, list[str]]) -> dict[str, dict]:
    """Per class: the mean share of each objective and every request's shares."""
    out = {}
    for name, prompts in requests.items():
        shares = gate_shares(model, prompts)
        out[name] = {"mean": dict(zip(model.objectives, shares.mean(0).round(4).tolist())),
                     "requests": {p: dict(zip(model.objectives, s.round(4).tolist())) for p, s in zip(prompts, shares)}}
    return out


def misses(shares: dict[str, dict], expect: dict[str, dict]) -> list[str]:
    """What each class misses of its expectations ({"harmlessness_at_most": 0.2, ...}), in words; [] if none."""
    found = []
    for cls, rules in expect.items():
        mean = shares[cls]["mean"]
        for rule, bound in rules.items():
            objective, _, kind = rule.rpartition("_at_")
            value = mean.get(objective, 0.0)
            if (kind == "most" and value > bound) or (kind == "least" and value < bound):
                found.append(f"{cls}: mean {objective} share {value:.2f}, expected at {kind} {bound}")
    return found


def markdown(shares: dict[str, dict]) -> str:
    """Mean share of each objective per class."""
    names = list(next(iter(shares.values()))["mean"])
    lines = ["| class | requests | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for cls, s in shares.items():
        lines.append(f"| {cls} | {len(s['requests'])} | " + " | ".join(f"{s['mean'][n]:.2f}" for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the class table and every request's shares; exit 1 when a class misses its expectations."""
    parser = argparse.ArgumentParser(prog="mo_explorer.training.gate_check", description=__doc__.splitlines()[0])
    parser.add_argument("--rm", default=str(config.EMBEDDED_HEAD_DIR), help="Head directory (default: shipped).")
    parser.add_argument("--requests", default=str(REQUESTS), help="Requests and expectations (JSON).")
    args = parser.parse_args(argv)
    from mo_explorer.models.head_reward import HeadRewardModel

    spec = json.loads(Path(args.requests).read_text())
    model = HeadRewardModel.load(args.rm, config.Settings.from_env().models.cache_dir, device="cpu")
    shares = class_shares(model, spec["requests"])
    print(markdown(shares))
    for cls, s in shares.items():
        for prompt, row in s["requests"].items():
            top = sorted(row.items(), key=lambda kv: -kv[1])[:3]
            print(f"{cls:9s} {prompt[:70]:70s} " + ", ".join(f"{k} {v:.2f}" for k, v in top))
    missed = misses(shares, spec["expect"])
    for line in missed:
        print("MISSED", line)
    return 1 if missed else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
