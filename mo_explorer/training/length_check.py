"""`python -m mo_explorer.training.length_check`: does the reward model's score follow answer length?

For each example prompt (`data/example_prompts.json`) the embedded generator writes 16 candidates (fixed seed,
the app's default sampling), and the reward model scores them as the app does (the likelihood read from the
generation itself). Prints the Spearman correlation of the gated score with the answer's word count, within each
prompt (then their mean) and over all candidates pooled, and the same for each objective. The candidates are kept
in a JSON file (`--texts`), so several heads can be compared on the same answers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from mo_explorer import config
from mo_explorer.training.ridge import spearman

PROMPTS = config.REPO_ROOT / "data" / "example_prompts.json"
CANDIDATES = 16


def write_candidates(settings: config.Settings, prompts: list[str], n: int, seed: int, max_new_tokens: int) -> list:
    """[{"prompt", "texts", "mean_logprob"}] from the embedded generator, n candidates per prompt."""
    from mo_explorer import schema
    from mo_explorer.models.registry import load_generator

    generator = load_generator(settings)
    params = schema.GenerationParams(n=n, max_new_tokens=max_new_tokens, seed=seed)
    out = []
    for prompt in prompts:
        gens = generator.generate(schema.as_messages(prompt), params)
        out.append({"prompt": prompt, "texts": [g.text for g in gens],
                    "mean_logprob": [float(np.mean(g.token_logprobs)) if g.token_logprobs else float("nan")
                                     for g in gens]})
    return out


def correlations(model, candidates: list[dict]) -> dict:
    """Spearman of the score and of each objective with word count: per prompt, their mean, and pooled."""
    scores, rewards, words, per_prompt = [], [], [], []
    for c in candidates:
        lp = np.array(c["mean_logprob"], np.float32)
        out = model.score(c["prompt"], c["texts"], mean_logprob=None if np.isnan(lp).any() else lp)
        w = np.array([len(t.split()) for t in c["texts"]], float)
        scores.append(out.score)
        rewards.append(out.rewards)
        words.append(w)
        per_prompt.append(spearman(out.score, w))
    s, r, w = np.concatenate(scores), np.concatenate(rewards), np.concatenate(words)
    return {"score_within_prompt_mean": float(np.nanmean(per_prompt)), "score_within_prompt": per_prompt,
            "score_pooled": spearman(s, w),
            "objectives_pooled": {name: spearman(r[:, j], w) for j, name in enumerate(model.objectives)},
            "objectives_within_prompt_mean": {
                name: float(np.nanmean([spearman(rr[:, j], ww) for rr, ww in zip(rewards, words)]))
                for j, name in enumerate(model.objectives)},
            "candidates": len(s), "prompts": len(candidates)}


def main(argv: list[str] | None = None) -> int:
    """Write (or reuse) the candidates, score them, print one JSON object."""
    parser = argparse.ArgumentParser(prog="mo_explorer.training.length_check", description=__doc__.splitlines()[0])
    parser.add_argument("--rm", default=str(config.EMBEDDED_HEAD_DIR), help="Head directory (default: shipped).")
    parser.add_argument("--texts", default=None, help="Candidates JSON: read if it exists, else written there.")
    parser.add_argument("--n", type=int, default=CANDIDATES, help="Candidates per prompt.")
    parser.add_argument("--seed", type=int, default=0, help="Sampling seed.")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="Tokens per candidate at most.")
    args = parser.parse_args(argv)
    from mo_explorer.models.head_reward import HeadRewardModel

    settings = config.Settings.from_env()
    path = Path(args.texts) if args.texts else None
    if path is not None and path.is_file():
        candidates = json.loads(path.read_text())
    else:
        prompts = [p["prompt"] for p in json.loads(PROMPTS.read_text())]
        candidates = write_candidates(settings, prompts, args.n, args.seed, args.max_new_tokens)
        if path is not None:
            path.write_text(json.dumps(candidates, indent=1) + "\n")
    model = HeadRewardModel.load(args.rm, settings.models.cache_dir, device="cpu")
    result = {"rm": str(args.rm), "n": args.n, "seed": args.seed, **correlations(model, candidates)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
