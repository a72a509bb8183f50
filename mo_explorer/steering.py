"""Which rows a steered round keeps: blockwise best-of-N along the user's direction (numpy only).

Every `block_tokens` tokens the generator hands over its unfinished rows; they are scored as partial answers and
ranked by the direction exactly as a finished round is (`ranking.rank`: per-round normalisation, linear or
Tchebycheff, weights pinned off the plot included). The best `survivors` rows go on; each other row continues a
copy of a survivor (its KV-cache row duplicated by the generator), so every row still writes its tokens and the
token budget equals a plain round's. Within a block the sampling distribution is unchanged (Controlled Decoding's
blockwise best-of-K, with the reward model standing in for a prefix scorer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mo_explorer import ranking
from mo_explorer.schema import Candidate, Direction, Generation

# (partial answers) -> (rewards (m, k), objective names (k,), maximize (k,)) in the round's column layout
Rewards = Callable[[list[Generation]], tuple[np.ndarray, Sequence[str], Sequence[bool]]]


def parents(values: np.ndarray, survivors: int, temperature: float, rng: np.random.Generator) -> list[int]:
    """For each row of values (m,), the row it continues from: itself if it survives, else a survivor.

    Survivors are the `survivors` best rows (ties to the lower index, as `ranking.rank_values`) and keep their
    place. A dropped row copies the survivors in turn, best first (temperature 0), or one drawn with probability
    softmax(values / temperature) over the survivors.
    """
    m = int(values.shape[0])
    order = ranking.rank_values(values).order
    keep = [int(i) for i in order[:max(1, min(survivors, m))]]
    kept = set(keep)
    dropped = [b for b in range(m) if b not in kept]
    if temperature > 0:
        logits = np.asarray(values, np.float64)[keep] / temperature
        probs = np.exp(logits - logits.max())
        chosen = rng.choice(len(keep), size=len(dropped), p=probs / probs.sum())
        sources = [keep[int(c)] for c in chosen]
    else:
        sources = [keep[j % len(keep)] for j in range(len(dropped))]
    result = list(range(m))
    for row, source in zip(dropped, sources):
        result[row] = source
    return result


@dataclass(frozen=True)
class Ranked:
    """One block of a steered round as the page shows it: the unfinished rows' partial answers as scored, and the
    row each goes on from (a row that goes on from another was dropped: it continues a copy of that one)."""

    rows: tuple[int, ...]  # (m,) which of the round's rows, in the block's order
    candidates: tuple[Candidate, ...]  # (m,) the partial answers scored, rewards in the round's column layout
    parents: tuple[int, ...]  # (m,) the position in rows each continues from (its own when it survived)

    def dropped(self) -> list[tuple[int, int]]:
        """(row dropped, row it now continues), for every row that did not survive this block."""
        return [(row, self.rows[p]) for i, (row, p) in enumerate(zip(self.rows, self.parents)) if p != i]


@dataclass
class Guide:
    """What a steered round's generator calls at every block boundary: partial answers -> their parents."""

    rewards: Rewards
    direction: Direction
    block_tokens: int = 32
    survivors: int = 2
    temperature: float = 0.0
    seed: int = 0
    rankings: int = 0  # how many times it ranked (rewards called), for the round's log and the bench
    on_ranked: Callable[[list[Generation], list[int]], None] | None = None  # (partial answers, parents): the page

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, partial: list[Generation]) -> list[int]:
        """Parents (m,) of the m unfinished rows: index of the row each one continues."""
        if len(partial) <= max(1, self.survivors):
            return list(range(len(partial)))  # nothing to drop: no scoring either
        R, names, maximize = self.rewards(partial)
        values = ranking.rank(R, maximize, self.direction, names).values
        self.rankings += 1
        chosen = parents(values, self.survivors, self.temperature, self._rng)
        if self.on_ranked is not None:
            self.on_ranked(partial, chosen)
        return chosen
