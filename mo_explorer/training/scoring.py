"""Score pairs with a fitted recipe (heads + gate) on cached features: what every validation table reads."""

from __future__ import annotations

import numpy as np

from mo_explorer.training import recipe


def score_variant(params: recipe.HeadParams, gate, chosen: recipe.FeatureTable, rejected: recipe.FeatureTable,
                  uniform: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scores (n,) of both sides of pairs and their rewards (n, k); `uniform` weighs every objective the same."""
    from mo_explorer.models.gate_trainer import gate_weights

    k = len(params.objectives)
    g = np.full((len(chosen.words), k), 1.0 / k) if uniform else gate_weights(gate, chosen.prompt_states)
    rc, rr = recipe.rewards(params, chosen), recipe.rewards(params, rejected)
    return recipe.scores(params, g, chosen), recipe.scores(params, g, rejected), rc, rr
