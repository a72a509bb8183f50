"""A round as JSON: the one serialiser that the API (`/generate`, `/rerank`) and the CLI (`generate`) share."""

from __future__ import annotations

import numpy as np

from mo_explorer import ranking
from mo_explorer.schema import Round


def round_summary(rnd: Round, ranked: ranking.Ranking | None = None) -> dict:
    """Candidates with rewards and rank, the gating, the Pareto front and the ranking, all by candidate index.

    Without a ranking, candidates are ranked by the reward model's gated score (ties by position), and
    "ranking" is null: no direction was asked for.
    """
    from mo_explorer import pareto  # here, not at the top: the CLI imports this module and pymoo is slow to load

    R = rnd.reward_matrix()
    ids = [c.index for c in rnd.candidates]  # candidate ids: an imported session's need not run 0..n-1
    order = ranked if ranked is not None else ranking.rank_values(rnd.scores())
    return {
        "session_id": rnd.session_id, "round_id": rnd.round_id, "status": rnd.status, "error": rnd.error,
        "prompt": rnd.prompt, "params": rnd.params.to_dict(), "mode": rnd.params.mode,
        "created_at": rnd.created_at,
        "generator": rnd.generator_id, "reward_model": rnd.reward_model_id,
        "objectives": list(rnd.objectives), "maximize": list(rnd.maximize), "measured": list(rnd.measured),
        "gating": [float(g) for g in np.asarray(rnd.gating).ravel()],
        "candidates": [{"index": c.index, "text": c.text, "rewards": [float(r) for r in c.rewards],
                        "score": float(c.score), "rank": int(order.ranks[i]), "n_tokens": c.n_tokens,
                        "gen_seconds": float(c.gen_seconds)} for i, c in enumerate(rnd.candidates)],
        "pareto_front": [ids[int(i)] for i in pareto.non_dominated(R, rnd.maximize)] if len(R) else [],
        "direction": None if rnd.direction is None else rnd.direction.to_dict(),
        "ranking": None if ranked is None else {"order": [ids[int(p)] for p in ranked.order],
                                                "values": [float(v) for v in ranked.values],
                                                "best": ids[ranked.best] if ranked.order.size else None},
    }
