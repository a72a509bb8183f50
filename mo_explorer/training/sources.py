"""The training sources that leave-one-source-out validation holds out, and which pair belongs to which.

Sources (folds), as the pairs name them:
- `rmb-helpfulness`, `rmb-harmlessness`, `alpacaeval`: the sampled training pairs of that subset;
- `ratings`: the pairs derived from ratings (`ratings-*` subsets).
Constructed (contrastive) pairs belong to no source: they are never held out.
"""

from __future__ import annotations

import numpy as np

from mo_explorer.training import data as D
from mo_explorer.training.metrics import pair_correct

RATINGS = "ratings"
HELD_OUT_SOURCES = ("rmb-helpfulness", "rmb-harmlessness", "alpacaeval", RATINGS)
JUDGED_BY_ALPACAEVAL = RATINGS + "-helpfulness"  # pairs of AlpacaEval responses ranked by AlpacaEval's judge


def source_of(pair: D.PairRow) -> str:
    """The fold a training pair belongs to (a source above, or '' for pairs never held out: contrastive ones)."""
    if pair.subset.startswith(RATINGS + "-"):
        return RATINGS
    return pair.subset if pair.subset in HELD_OUT_SOURCES else ""


def word_lengths(pairs: list[D.PairRow]) -> tuple[np.ndarray, np.ndarray]:
    """Whitespace words of the chosen (n,) and the rejected (n,) responses."""
    return (np.array([len(p.chosen.split()) for p in pairs], float),
            np.array([len(p.rejected.split()) for p in pairs], float))


def longer_wins(pairs: list[D.PairRow]) -> np.ndarray:
    """Per pair: 1 when the chosen response has more words, 0.5 on a tie, 0 otherwise (the length baseline)."""
    return pair_correct(*word_lengths(pairs))
