"""What the page shows of a round while it is written, stored nowhere: the widget's `live` part.

Every unfinished row's text so far (the tail, where the newest words are), and in a steered round each row's point
where its partial answer was scored at the last block (every plot column, so the axes can change while it runs:
the page picks the two it shows). Those points are drawn on the scale of the round the steered
round is written from, which stays on the plot until the new round is complete: the new round's own scale would
change with every candidate that ends, and the points would jump about with it. A row dropped at a block leaves a
point that fades out where it was, and goes on from the survivor it copies. Built without gradio, like render.py.
"""

from __future__ import annotations

import numpy as np

from mo_explorer import plotting
from mo_explorer.schema import Generation, Round
from mo_explorer.steering import Ranked

LIVE_CHARS = 360  # a card shows the end of a row being written: its newest words


def tail(text: str, chars: int = LIVE_CHARS) -> str:
    """The last `chars` characters of a row's text, marked as cut at the front when they are not all of it."""
    return text if len(text) <= chars else "…" + text[-chars:].lstrip()


class LiveRound:
    """The live part of the widget for one streamed round. base: the round on the plot that a steered round's
    points are drawn over (None for a plain round: it shows text only, its partial answers are never scored)."""

    def __init__(self, base: Round | None):
        self.base = base if base is not None and base.candidates else None
        self.rows: tuple[Generation, ...] = ()  # the rows being written, as they read at the last hand-up
        self.points: dict[int, list[float]] = {}  # row -> its partial answer's plot columns at the last block
        self.done: list[dict] = []  # the new round's candidates scored so far (steered: points where they ended)
        self.dropped: list[dict] = []  # rows dropped since the last payload: the page fades each one out once
        self.shown: str | None = None  # a plain round's own id once its first candidates are on the plot
        self.seq = 0

    @property
    def has_text(self) -> bool:
        """Whether a row has any words yet."""
        return any(g.text.strip() for g in self.rows)

    def writing(self, rows: tuple[Generation, ...]) -> None:
        """The unfinished rows as they read now."""
        self.rows = rows

    def _values(self, candidates) -> list[list[float]] | None:
        """Scored answers' plot columns (m, k + 1) on the base round's normalised scale, or None when they do not fit
        it (another reward model's objectives)."""
        Q = np.asarray([[*c.rewards, c.score] for c in candidates], np.float64)
        if Q.shape[1] != len(plotting.plot_columns(self.base)):
            return None
        return np.round(plotting.scaled_onto(self.base, Q), 5).tolist()

    def ranked(self, ranked: Ranked) -> None:
        """A steered round's block: each row's point moves to its partial answer's score; dropped rows fade."""
        if self.base is None:
            return
        values = self._values(ranked.candidates)
        if values is None:
            return
        at = dict(zip(ranked.rows, values))
        for row, source in ranked.dropped():
            self.dropped.append({"row": row, "values": at[row], "to": source})
        for row, parent in zip(ranked.rows, ranked.parents):
            self.points[row] = at[ranked.rows[parent]]  # a dropped row goes on from its survivor's point

    def scored(self, rnd: Round) -> None:
        """The new round's candidates scored so far (in a steered round, drawn where they ended)."""
        self.shown = rnd.round_id
        values = self._values(rnd.candidates) if self.base is not None and rnd.candidates else None
        if values is not None:
            self.done = [{"index": c.index, "values": v, "colour": plotting.colour(c.index)}
                         for c, v in zip(rnd.candidates, values)]

    def payload(self, message: str) -> dict:
        """The widget's value while the round runs: {"live": ...} (the dropped rows are handed over once)."""
        self.seq += 1
        writing = {g.row for g in self.rows}
        live = {
            # the round on the plot that this view goes with (the page keeps the plot only while it shows that one)
            "seq": self.seq, "message": message, "base": self.base.round_id if self.base is not None else self.shown,
            "rows": [{"row": g.row, "text": tail(g.text), "tokens": g.n_tokens, "colour": plotting.colour(g.row)}
                     for g in sorted(self.rows, key=lambda g: g.row)],
            "points": [{"row": row, "values": values, "colour": plotting.colour(row)}
                       for row, values in sorted(self.points.items()) if row in writing],
            "done": self.done, "dropped": self.dropped,
        }
        self.dropped = []
        return {"live": live}
