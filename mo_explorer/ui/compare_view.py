"""What the side-by-side comparison shows, built from schema types without gradio: the default pair, both
texts as escaped Markdown, per-objective bars and their differences, where each one wins, the learned direction.

Model output is untrusted: texts go through `render.safe_markdown`, names through `render.escape_html`.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mo_explorer import plotting, ranking
from mo_explorer.schema import Direction, Round
from mo_explorer.ui import render

MAX_ANGLE_STD = 180.0  # an angle that uncertain covers the whole circle


def positions(rnd: Round) -> dict[int, int]:
    """Candidate index -> its position in rnd.candidates (the rows of the round's matrices)."""
    return {c.index: pos for pos, c in enumerate(rnd.candidates)}


def default_pair(rnd: Round, direction: Direction | None) -> tuple[int, int]:
    """(A, B): the gate's winner (best gated score) and the direction's winner, or its runner-up if the same."""
    if len(rnd.candidates) < 2:
        raise ValueError("a comparison needs a round with at least two candidates")
    idx = [c.index for c in rnd.candidates]
    gate = int(np.argmax(rnd.scores()))  # first maximum on ties, like the ranked list
    if direction is None:
        order = ranking.rank_values(rnd.scores()).order
    else:
        order = ranking.rank(rnd.reward_matrix(), rnd.maximize, direction, rnd.objectives).order
    mine = int(order[0]) if int(order[0]) != gate else int(order[1])
    return idx[gate], idx[mine]


def side_markdown(rnd: Round, index: int, side: str) -> str:
    """One side's heading, the reward model's score and full text (escaped Markdown)."""
    cand = rnd.candidates[positions(rnd)[index]]
    return (f"### {side} · candidate #{cand.index}\n\n*reward model's score {cand.score:.4g} · {cand.n_tokens} tokens*"
            f"\n\n---\n\n{render.safe_markdown(cand.text) or '*(empty response)*'}\n")


def bars_figure(rnd: Round, a: int, b: int) -> go.Figure:
    """Per plot column: both candidates' normalised values (better is higher) and A - B below."""
    pos = positions(rnd)
    names = plotting.plot_columns(rnd)
    raw, _ = plotting.plot_matrix(rnd)
    Z = plotting.normalised(rnd)
    za, zb = Z[pos[a]], Z[pos[b]]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.08,
                        subplot_titles=("normalised value in this round (better is higher)", "A − B"))
    for side, index, z in (("A", a, za), ("B", b, zb)):
        fig.add_trace(go.Bar(x=names, y=z, name=f"{side}: #{index}", marker_color=plotting.colour(index),
                             customdata=raw[pos[index]], hovertemplate="%{x}: %{customdata:.4g}<extra></extra>"),
                      row=1, col=1)
    diff = za - zb
    fig.add_trace(go.Bar(x=names, y=diff, name="A − B", showlegend=False,
                         marker_color=["#2ca02c" if d > 0 else "#d62728" for d in diff],
                         hovertemplate="%{x}: %{y:+.2f}<extra></extra>"), row=2, col=1)
    fig.update_yaxes(range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(range=[-1.05, 1.05], zeroline=True, row=2, col=1)
    fig.update_annotations(font_size=12)  # the subplot titles
    fig.update_layout(barmode="group", height=400, margin={"l": 40, "r": 10, "t": 80, "b": 80},
                      legend={"orientation": "h", "y": 1.16, "x": 0}, template="plotly_white")
    return fig


def _arcs(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Join a piece ending at 360° with one starting at 0° (the same arc through 0°)."""
    arcs = list(intervals)
    if len(arcs) > 1 and arcs[0][0] == 0.0 and arcs[-1][1] == 360.0:
        arcs = [(arcs[-1][0], arcs[0][1] + 360.0)] + arcs[1:-1]
    return arcs


def wins_markdown(rnd: Round, a: int, b: int, x: str, y: str) -> str:
    """Where on the circle of directions over the plotted pair (linear score) A and B each win."""
    names = plotting.plot_columns(rnd)
    if x not in names or y not in names or x == y:
        return "*Put two different objectives on the plot's axes to see where each one wins.*"
    Z = plotting.normalised(rnd)[:, [names.index(x), names.index(y)]]
    intervals = ranking.winning_intervals(Z)
    pos = positions(rnd)
    lines = [f"**Directions in which each one ranks first** (linear score over "
             f"{render.escape_html(x)} → {render.escape_html(y)}; 0° = only {render.escape_html(x)}, "
             f"90° = only {render.escape_html(y)}):"]
    for side, index in (("A", a), ("B", b)):
        # a sliver of floating-point width is a tie at one angle (a point on a hull edge), not a win
        arcs = [(lo, hi) for lo, hi in _arcs(intervals[pos[index]]) if hi - lo > 1e-6]
        if not arcs:
            lines.append(f"- **{side}** (#{index}) wins in no direction on this pair (it lies inside, or on an "
                         "edge of, the convex hull of the candidates on these two objectives).")
            continue
        span = sum(hi - lo for lo, hi in arcs)
        text = ", ".join(f"{lo:.0f}°–{hi - 360 if hi > 360 else hi:.0f}°" for lo, hi in arcs)
        lines.append(f"- **{side}** (#{index}) wins for {text} ({span:.0f}° of 360°).")
    return "\n".join(lines)


def learned_overlay(rnd: Round, direction: Direction, covariance: np.ndarray, raw: np.ndarray,
                    x: str, y: str) -> dict | None:
    """The learned direction projected on the plotted pair: angle and ±1 std (degrees) for the widget.

    raw (k,) and covariance (k, k) are the fit's coefficients over direction.objectives. The angle of the
    projection is atan2(w_y, w_x); its std comes from the delta method on that 2x2 block (the same formula
    as DirectionFit.angle_std_deg when k == 2). None when the pair is not two of the direction's objectives
    or the direction is (nearly) perpendicular to the plotted plane.
    """
    names = list(direction.objectives)
    if x not in names or y not in names or x == y or not set(names) <= set(rnd.objectives):
        return None
    jx, jy = names.index(x), names.index(y)
    wx, wy = float(raw[jx]), float(raw[jy])
    r2 = wx * wx + wy * wy
    total = float(np.dot(raw, raw))
    if total <= 0.0 or r2 / total < 1e-6:
        return None
    g = np.array([-wy, wx]) / r2  # d(atan2(wy, wx)) / d(wx, wy)
    block = np.asarray(covariance, dtype=np.float64)[np.ix_([jx, jy], [jx, jy])]
    std = math.degrees(math.sqrt(max(float(g @ block @ g), 0.0)))
    return {"angle": math.degrees(math.atan2(wy, wx)) % 360.0, "std": min(std, MAX_ANGLE_STD),
            "share": math.sqrt(r2 / total)}  # how much of the learned direction lies in this plane


def learned_for(explorer, session_id: str):
    """The session's LearnedDirection, or None (fewer than two decisive votes, or votes that cancel out)."""
    try:
        return explorer.learned_direction(session_id)
    except ValueError:  # fit_direction: the votes cancel out exactly; the page says so instead of failing
        return None


def overlay_for(explorer, rnd: Round, x: str, y: str) -> dict | None:
    """The widget's learned-direction overlay for a round's plotted pair, if the session has learned one."""
    if not rnd.candidates:
        return None
    learned = learned_for(explorer, rnd.session_id)
    if learned is None:
        return None
    return learned_overlay(rnd, learned.direction, learned.fit.covariance, learned.fit.raw, x, y)


def _of(fraction: float, n: int) -> str:
    """'3' or '2.5' votes: agreement counts an exact tie as half a vote."""
    return f"{round(fraction * n * 2) / 2:g}"


def learned_markdown(learned, n_decisive: int) -> str:
    """The learned direction in words, with how many votes it and the gate explain (learned: LearnedDirection)."""
    if learned is None:
        if n_decisive >= 2:
            return ("**Your direction:** these votes contradict each other and point nowhere yet; "
                    "vote on more pairs.")
        more = 2 - n_decisive
        return (f"**Your direction:** needs more votes: {n_decisive} decisive vote(s) so far (A or B is better);"
                f" vote on {more} more pair(s) to learn it.")
    n = learned.n_votes
    weights = ", ".join(f"{render.escape_html(name)} {w:+.2f}"
                        for name, w in zip(learned.direction.objectives, learned.direction.unit()) if abs(w) > 5e-3)
    return (f"**Your direction** (Bradley–Terry fit to {n} decisive votes): {weights}.\n\n"
            f"It explains **{_of(learned.agreement, n)} of {n}** votes "
            f"(the reward model's gated score: {_of(learned.gate_agreement, n)} of {n}). "
            "On the plot: the dashed arrow, shaded ±1 standard deviation of its angle.")
