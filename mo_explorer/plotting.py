"""Plotly figures and the Pareto widget's payload, built from schema types: never imports gradio.

Every plot of objective values uses the same per-round normalised, oriented values that `ranking.rank`
scores (each column min-max scaled to [0, 1] over the round, costs flipped so that up and right are
better), so an arrow drawn on the plot is the direction the ranking uses.
"""

from __future__ import annotations

import html
import json
import math
import textwrap

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from mo_explorer import pareto, ranking
from mo_explorer.schema import Direction, Round

SCORE = "score"  # the reward model's gated score, offered as a plot axis beside the objectives
PALETTE = tuple(qualitative.Dark24 + qualitative.Light24)  # 48 distinct colours; rounds hold at most 32
HOVER_CHARS = 180  # how much of a response the hover label and the cards show
AXIS_PAD = 0.08  # room around the unit square so points on its edge stay clickable


def escape(text: str) -> str:
    """Model output made inert for HTML and Plotly labels: & < > (and quotes) become entities."""
    return html.escape(text, quote=True)


def colour(index: int) -> str:
    """The colour of candidate `index`, shared by every plot and card."""
    return PALETTE[index % len(PALETTE)]


def plot_columns(rnd: Round) -> list[str]:
    """Names offered on the plot axes: the round's objectives then the gated score."""
    return list(rnd.objectives) + [SCORE]


def plot_matrix(rnd: Round) -> tuple[np.ndarray, list[bool]]:
    """Raw values (n, k + 1) of every plot column and whether each is maximised."""
    R = rnd.reward_matrix().astype(np.float64)
    return np.column_stack([R, rnd.scores().astype(np.float64)]), list(rnd.maximize) + [True]


def normalised(rnd: Round) -> np.ndarray:
    """Per-round normalised, oriented values (n, k + 1) of every plot column, as `ranking.rank` sees them."""
    R, maximize = plot_matrix(rnd)
    return ranking.normalise(ranking.orient(R, maximize))


def full_weights(rnd: Round, direction: Direction) -> np.ndarray:
    """A direction's weights spread over all the round's objectives (k,), zero where it names none."""
    names = list(rnd.objectives)
    w = np.zeros(len(names))
    for name, value in zip(direction.objectives, direction.weights):
        if name not in names:
            raise ValueError(f"direction names {name!r}, which this round does not have")
        w[names.index(name)] = value
    return w


def axis_title(name: str, maximize: bool) -> str:
    """Axis label saying which way is better."""
    return f"{name} (normalised; right/up is better)" if maximize else f"{name} (cost, flipped: right/up is lower)"


def _ticks(raw: np.ndarray, maximize: bool) -> dict:
    """Tick positions in the unit square labelled with the raw values they stand for."""
    if raw.size == 0:
        return {}
    lo, hi = (float(raw.min()), float(raw.max())) if maximize else (float(raw.max()), float(raw.min()))
    if lo == hi:
        return {"tickvals": [0.5], "ticktext": [f"{lo:.4g}"]}
    # enough decimals that neighbouring ticks (a quarter of the span apart) read differently
    decimals = min(max(0, 2 - math.floor(math.log10(abs(hi - lo)))), 8)
    vals = [0.0, 0.25, 0.5, 0.75, 1.0]
    return {"tickvals": vals, "ticktext": [f"{lo + (hi - lo) * v:.{decimals}f}" for v in vals]}


def hover_texts(rnd: Round) -> list[str]:
    """Per candidate: index, the escaped start of its text and every raw value, for Plotly hover labels."""
    R, _ = plot_matrix(rnd)
    names = plot_columns(rnd)
    out = []
    for c, row in zip(rnd.candidates, R):
        start = c.text[:HOVER_CHARS] + ("…" if len(c.text) > HOVER_CHARS else "")
        lines = textwrap.wrap(" ".join(start.split()), 60) or ["(empty response)"]
        values = "<br>".join(f"{escape(n)}: {v:.3g}" for n, v in zip(names, row))
        out.append(f"<b>#{c.index}</b><br>" + "<br>".join(escape(line) for line in lines) + "<br>" + values)
    return out


def pareto_figure(rnd: Round, x: str, y: str) -> go.Figure:
    """Candidates on two plot columns (normalised): points, the 2-D front, the all-objective front, the ideal."""
    names = plot_columns(rnd)
    for name in (x, y):
        if name not in names:
            raise ValueError(f"unknown plot column {name!r}; choose one of {names}")
    ix, iy = names.index(x), names.index(y)
    raw, maximize = plot_matrix(rnd)
    Z = normalised(rnd)
    idx = [c.index for c in rnd.candidates]
    fig = go.Figure()
    if len(idx):
        front = pareto.front_line(Z[:, [ix, iy]])
        fig.add_trace(go.Scatter(x=Z[front, ix], y=Z[front, iy], mode="lines", name="front of this pair",
                                 line={"color": "#888", "dash": "dot", "width": 1.5}, hoverinfo="skip"))
        everywhere = set(pareto.non_dominated(raw[:, :-1], rnd.maximize).tolist()) if raw.shape[1] > 1 else set()
        fig.add_trace(go.Scatter(
            x=Z[:, ix], y=Z[:, iy], mode="markers+text", name="candidates", text=[str(i) for i in idx],
            textposition="top center", textfont={"size": 10},
            customdata=idx, hovertext=hover_texts(rnd), hoverinfo="text",
            marker={"size": 13, "color": [colour(i) for i in idx],
                    "symbol": ["diamond" if i in everywhere else "circle" for i in range(len(idx))],
                    "line": {"width": [2.5 if i in everywhere else 0.5 for i in range(len(idx))],
                             "color": "#222"}}))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="◆ non-dominated on all objectives",
                                 marker={"symbol": "diamond", "size": 11, "color": "#bbb",
                                         "line": {"width": 2.5, "color": "#222"}}, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[1.0], y=[1.0], mode="markers", name="ideal point", hoverinfo="name",
                                 marker={"symbol": "star", "size": 15, "color": "gold",
                                         "line": {"width": 1, "color": "#555"}}))
    pad = [-AXIS_PAD, 1 + AXIS_PAD]
    fig.update_layout(
        xaxis={"title": {"text": axis_title(x, maximize[ix])}, "range": pad, "zeroline": False,
               "fixedrange": True, **_ticks(raw[:, ix], maximize[ix])},
        yaxis={"title": {"text": axis_title(y, maximize[iy])}, "range": pad, "zeroline": False,
               "fixedrange": True, "scaleanchor": "x", "scaleratio": 1, **_ticks(raw[:, iy], maximize[iy])},
        margin={"l": 60, "r": 20, "t": 30, "b": 50}, height=480, showlegend=True,
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 11}},
        dragmode=False, hovermode="closest", template="plotly_white")
    return fig


def widget_payload(rnd: Round, direction: Direction | None, x: str, y: str, learned: dict | None = None) -> dict:
    """Everything the browser needs to draw, drag and rerank (JSON-able).

    `values` (n, k + 1) are the normalised oriented plot columns; the first k are the round's objectives,
    over which `weights` (k,) and the browser's ranking run, with the same formulas as `ranking.scalarise`.
    `learned` (optional: angle, std in degrees over the plotted pair) draws the direction learned from votes.
    """
    names = plot_columns(rnd)
    Z = normalised(rnd)
    k = len(rnd.objectives)
    weights = full_weights(rnd, direction) if direction is not None else np.ones(k)
    method = direction.method if direction is not None else "linear"
    figure = json.loads(pareto_figure(rnd, x, y).to_json())
    return {
        "round_id": rnd.round_id, "session_id": rnd.session_id, "status": rnd.status,
        "columns": names, "n_objectives": k, "maximize": list(rnd.maximize) + [True],
        "x": names.index(x), "y": names.index(y),
        "values": Z.tolist(), "raw": plot_matrix(rnd)[0].tolist(),
        "indices": [c.index for c in rnd.candidates],
        "texts": [c.text[:HOVER_CHARS] for c in rnd.candidates],
        "colours": [colour(c.index) for c in rnd.candidates],
        "weights": weights.tolist(), "method": method, "eps": ranking.TCHEBYCHEFF_EPS,
        "figure": figure, "learned": learned,
    }


def gating_figure(rnd: Round) -> go.Figure:
    """Bar chart of the gate's weights (k_model,) for this round's prompt."""
    k = len(rnd.gating)
    names = list(rnd.objectives[:k])
    fig = go.Figure(go.Bar(x=names, y=np.asarray(rnd.gating, dtype=np.float64), marker_color="#4c78a8",
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title={"text": "What the reward model weighs for this prompt (gate)", "font": {"size": 13}},
                      yaxis={"title": {"text": "gating weight"}, "rangemode": "tozero"},
                      margin={"l": 50, "r": 10, "t": 40, "b": 80}, height=300, template="plotly_white")
    return fig


def parallel_figure(rnd: Round, direction: Direction | None) -> go.Figure:
    """Parallel coordinates over every objective: one line per candidate in its colour, normalised, up is better.

    Drawn as SVG lines (not Plotly's WebGL parcoords) so it renders anywhere and a hover names the candidate;
    the best candidate by the direction (else by the gated score) is drawn thick.
    """
    R = rnd.reward_matrix().astype(np.float64)
    k = len(rnd.objectives)
    Z = normalised(rnd)[:, :k]
    if not len(R):
        return go.Figure()
    if direction is not None:
        best = ranking.rank(R, rnd.maximize, direction, rnd.objectives).best
    else:
        best = int(np.argmax(rnd.scores()))
    fig = go.Figure()
    for pos, c in enumerate(rnd.candidates):
        raw = [f"{name}: {value:.4g}" for name, value in zip(rnd.objectives, R[pos])]
        fig.add_trace(go.Scatter(
            x=list(range(k)), y=Z[pos], mode="lines+markers", name=f"#{c.index}", hovertext=raw, hoverinfo="text+name",
            line={"color": colour(c.index), "width": 4 if pos == best else 1.5},
            marker={"size": 5}, opacity=1.0 if pos == best else 0.7))
    for j, maximize in enumerate(rnd.maximize):  # raw values at the bottom and top of each axis
        col = R[:, j]
        worst, top = (col.min(), col.max()) if maximize else (col.max(), col.min())
        for y, value, anchor in ((0.0, worst, "top"), (1.0, top, "bottom")):
            fig.add_annotation(x=j, y=y, text=f"{value:.3g}", showarrow=False, yanchor=anchor, font={"size": 10})
    fig.update_layout(
        xaxis={"tickvals": list(range(k)), "ticktext": list(rnd.objectives), "range": [-0.3, k - 0.7],
               "showgrid": True, "gridcolor": "#bbb", "zeroline": False, "fixedrange": True},
        yaxis={"range": [-0.15, 1.15], "showticklabels": False, "showgrid": False, "zeroline": False,
               "fixedrange": True, "title": {"text": "normalised (up is better)"}},
        margin={"l": 40, "r": 10, "t": 45, "b": 40}, height=360, template="plotly_white", hovermode="closest",
        legend={"orientation": "h", "y": -0.15, "font": {"size": 10}})
    return fig
