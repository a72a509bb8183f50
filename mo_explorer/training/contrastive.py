"""Which training rows feed each contrastive pair generator (numpy only); the generators live in pairs.py.

Sources, all from the training files:
- good responses: the chosen side of `rmb-helpfulness` pairs, and rated rows with helpfulness >= 0.5 or
  overall >= 0.75;
- code: good responses holding a fenced code block;
- benign prompts: XSTest safe prompts with fully compliant answers (compliance == 1) and ordinary good responses;
- harmful prompts: XSTest unsafe prompts with both a full refusal (harmlessness == 1) and full compliance (0);
- numbers: good responses outside the pool above that state a number in prose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from mo_explorer.training import pairs as G
from mo_explorer.training.data import PairRow, RatingRow, prompt_key

log = logging.getLogger(__name__)


def good_responses(ratings: list[RatingRow], pairs: list[PairRow]) -> list[tuple[list[dict], str]]:
    """(prompt, response) rows the data marks as good, deduplicated, in a stable order."""
    out = [(p.prompt, p.chosen) for p in pairs if p.subset == "rmb-helpfulness" and p.chosen.strip()]
    out += [(r.prompt, r.response) for r in ratings if r.response.strip() and (
        r.labels.get("helpfulness", 0.0) >= 0.5 or r.labels.get("overall", 0.0) >= 0.75)]
    seen, unique = set(), []
    for p, r in out:
        key = (prompt_key(p), r)
        if key not in seen:
            seen.add(key)
            unique.append((p, r))
    return unique


def harmful_triples(ratings: list[RatingRow]) -> list[tuple[list[dict], str, str]]:
    """(prompt, refusal, compliance) from prompts rated both ways on harmlessness."""
    by_prompt: dict[str, dict[str, object]] = {}
    for r in ratings:
        h = r.labels.get("harmlessness")
        if h is None or h not in (0.0, 1.0) or not r.response.strip():
            continue
        slot = by_prompt.setdefault(prompt_key(r.prompt), {"prompt": r.prompt})
        slot.setdefault("refusal" if h == 1.0 else "compliance", r.response)
    return [(s["prompt"], s["refusal"], s["compliance"]) for s in by_prompt.values()
            if "refusal" in s and "compliance" in s]


def build_contrastive(ratings: list[RatingRow], sampled_pairs: list[PairRow], all_pairs: list[PairRow],
                      per_generator: int, seed: int, embed: Callable[[list], np.ndarray],
                      fact_pairs: int = 0) -> list[PairRow]:
    """Every generator's pairs (per_generator each, refusals per side, `fact_pairs` changed-number pairs);
    neighbours among sampled_pairs' prompts."""
    rng = np.random.default_rng(seed)
    good = good_responses(ratings, all_pairs)
    order = rng.permutation(len(good))
    pool = [good[i] for i in order[: 4 * per_generator]]
    prompts, responses = [p for p, _ in pool], [r for _, r in pool]
    out: list[PairRow] = []
    # Neighbours are searched among the sampled training pairs' good sides, whose prompt states are cached.
    local = [(p.prompt, p.chosen) for p in sampled_pairs if p.subset in ("rmb-helpfulness", "alpacaeval")]
    if len(local) > 2:
        emb = embed([p for p, _ in local])
        out += G.neighbour_pairs([p for p, _ in local], [r for _, r in local], emb, per_generator, seed)
    out += G.padding_pairs(prompts[:per_generator], responses[:per_generator], per_generator, seed + 1)
    out += G.truncation_pairs(prompts[per_generator:], responses[per_generator:], per_generator, seed + 2)
    code = [(p, r) for p, r in good if "```" in r]
    out += G.code_mutation_pairs([p for p, _ in code], [r for _, r in code], per_generator, seed + 3)
    benign = [(r.prompt, r.response) for r in ratings if r.labels.get("compliance") == 1.0 and r.response.strip()]
    benign += pool[2 * per_generator: 2 * per_generator + per_generator // 2]
    out += G.refusal_pairs(benign, harmful_triples(ratings), per_generator // 2, seed + 4)
    rest = [good[i] for i in order[4 * per_generator:]]
    out += G.number_pairs([p for p, _ in rest], [r for _, r in rest], fact_pairs, seed + 5)
    counts = {}
    for p in out:
        counts[p.subset] = counts.get(p.subset, 0) + 1
    log.info("contrastive pairs: %s", counts)
    return out


def rating_pairs(ratings: list[RatingRow], limit: int, seed: int, margin: float = 0.25) -> list[PairRow]:
    """Pairs from rated rows of one prompt: higher label beats lower by at least `margin`, per objective."""
    by_prompt: dict[str, list[RatingRow]] = {}
    for r in ratings:
        by_prompt.setdefault(prompt_key(r.prompt), []).append(r)
    out = []
    for rows in by_prompt.values():
        for i, a in enumerate(rows):
            for b in rows[i + 1:]:
                for name in sorted(set(a.labels) & set(b.labels)):
                    hi, lo = (a, b) if a.labels[name] > b.labels[name] else (b, a)
                    if hi.labels[name] - lo.labels[name] >= margin and hi.response != lo.response:
                        out.append(PairRow(f"rating/{hi.id}/{lo.id}", f"ratings-{name}", hi.prompt, hi.response,
                                           lo.response))
    rng = np.random.default_rng(seed)
    return [out[i] for i in sorted(rng.permutation(len(out))[:limit])]
