"""Plotly figures and the Pareto widget's payload, built from schema types: never imports gradio.

Every plot of objective values uses the same per-round normalised, oriented values that `ranking.rank`
scores (each column min-max scaled to [0, 1] over the round, costs flipped so that up and right are
better), so an arrow drawn on the plot is the direction the ranking uses.
"""

from __future__ import annotations

import html
import json
import textwrap

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from mo_explorer import objectives, pareto, ranking
from mo_explorer.schema import Direction, Round

SCORE = "score"  # the reward model's own (gated) score, offered as a plot axis beside the objectives
PALETTE = tuple(qualitative.Dark24 + qualitative.Light24)  # 48 distinct colours; rounds hold at most 32
HOVER_CHARS = 180  # how much of a response the hover label and the cards show
AXIS_PAD = 0.08  # room around the unit square so points on its edge stay clickable
# The overlay's sizes in normalised data units (the plot's unit square), sent to the browser in the payload.
# plotly_white as plain JSON, taken once. `template="plotly_white"` copies and validates the whole template into
# every figure (about 8 ms each on this CPU, most of a round's drawing time when rounds queue: bench/load.py with
# py-spy); figures built by new_figure() carry the same JSON unvalidated.
WHITE = pio.templates["plotly_white"].to_plotly_json()
OVERLAY = {"ring_inner": 0.43, "ring_outer": 0.5, "arrow_len": 0.465, "learned_len": 0.3,
           "tcheb_ring_inner": 0.1, "tcheb_ring_outer": 0.16, "tcheb_arrow_len": 0.95}


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
    """Axis label saying what the normalised ticks mean and which way is better."""
    if maximize:
        return f"{name}: 0 = worst, 1 = best in this round →"
    return f"{name} (a cost): 0 = highest, 1 = lowest in this round →"


UNIT_TICKS = {"tickvals": [0.0, 0.25, 0.5, 0.75, 1.0], "ticktext": ["0", "0.25", "0.5", "0.75", "1"]}


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


def plane_default(rnd: Round, base: Direction | None, x: str, y: str) -> Direction | None:
    """The direction the page starts from on axes (x, y): `base` (the gate's) with only the plotted pair kept.

    Objectives off the plot weigh nothing until the person pins them, so the arrow alone decides the
    ranking. When an axis is not an objective (the score) no arrow can be dragged and `base` stays whole.
    """
    if base is None or x not in rnd.objectives or y not in rnd.objectives or x == y:
        return base
    w = dict(zip(base.objectives, base.weights))
    wx, wy = w.get(x, 0.0), w.get(y, 0.0)
    if wx == 0.0 and wy == 0.0:
        wx = wy = 1.0
    return Direction((x, y), (wx, wy), base.method)


def new_figure(data=None) -> go.Figure:
    """A figure on the plotly_white template, without plotly's property checks: the figures here are our own code,
    and tests/test_plotting.py checks each one against plotly's validators."""
    return go.Figure(data, layout={"template": WHITE}, _validate=False)


def _legend_entry(name: str, **style) -> go.Scatter:
    """A legend-only trace: the overlay (arrow, ring, wedge) is SVG drawn by the browser, not Plotly traces."""
    return go.Scatter(x=[None], y=[None], name=name, hoverinfo="skip", **style)


def _ideal_trace() -> go.Scatter:
    """The ideal point (1, 1) as the first trace, so it is drawn below every candidate; hoverinfo 'skip' gives it no
    hover and no clicks. (Not a layout path shape: gradio_client takes any {"path": str} in a reply for a file to
    download, which broke /generate_stream for API callers.)"""
    return go.Scatter(x=[1.0], y=[1.0], mode="markers", name="ideal corner", showlegend=False, hoverinfo="skip",
                      marker={"symbol": "star", "size": 16, "color": "gold", "line": {"width": 1, "color": "#777"}})


def pareto_figure(rnd: Round, x: str, y: str, learned: bool = False) -> go.Figure:
    """Candidates on two plot columns (normalised): points, the 2-D front, the ideal corner and legend entries.

    Candidates on the front of the plotted pair are filled diamonds, the others small open circles; the
    all-objective front is an option the widget switches to (payload `symbols_all`).
    """
    names = plot_columns(rnd)
    for name in (x, y):
        if name not in names:
            raise ValueError(f"unknown plot column {name!r}; choose one of {names}")
    ix, iy = names.index(x), names.index(y)
    _, maximize = plot_matrix(rnd)
    Z = normalised(rnd)
    idx = [c.index for c in rnd.candidates]
    fig = new_figure()
    if len(idx):
        fig.add_trace(_ideal_trace())
        front = pareto.front_line(Z[:, [ix, iy]])
        fig.add_trace(go.Scatter(x=Z[front, ix], y=Z[front, iy], mode="lines", name="front of the plotted pair",
                                 line={"color": "#888", "dash": "dot", "width": 1.5}, hoverinfo="skip"))
        on_front = set(front.tolist())
        fig.add_trace(go.Scatter(
            x=Z[:, ix], y=Z[:, iy], mode="markers+text", name="candidates", text=[str(i) for i in idx],
            textposition="top center", textfont={"size": 10}, showlegend=False, cliponaxis=False,
            customdata=idx, hovertext=hover_texts(rnd), hoverinfo="text",
            marker={"size": 13, "color": [colour(i) for i in idx], "symbol": symbols(len(idx), on_front),
                    "line": {"width": 1.5, "color": "#222"}}))
        fig.add_trace(_legend_entry("on the plotted front (○: behind it)", mode="markers",
                                    marker={"symbol": "diamond", "size": 11, "color": "#bbb",
                                            "line": {"width": 1.5, "color": "#222"}}))
        fig.add_trace(_legend_entry("ideal corner (best of both axes)", mode="markers",
                                    marker={"symbol": "star", "size": 12, "color": "gold",
                                            "line": {"width": 1, "color": "#777"}}))
        if ix < len(rnd.objectives) and iy < len(rnd.objectives) and ix != iy:
            fig.add_trace(_legend_entry("your direction (drag its head)", mode="lines",
                                        line={"color": "#d62728", "width": 3}))
            fig.add_trace(_legend_entry("ring: who ranks first at each angle", mode="markers",
                                        marker={"symbol": "square", "size": 11, "color": "rgba(120,120,120,0.4)"}))
            # the overlay's level line (moex-iso in pareto.css): without an entry it read as a stray front segment
            fig.add_trace(_legend_entry("equal score to the top-ranked (none beyond it)", mode="lines",
                                        line={"color": "#555", "width": 1.2, "dash": "dash"}))
            if learned:
                fig.add_trace(_legend_entry("learned from your votes (±1 std)", mode="lines",
                                            line={"color": "#1f77b4", "width": 2.5, "dash": "dash"}))
    pad = [-AXIS_PAD, 1 + AXIS_PAD]
    # constrain="domain": equal aspect shrinks the drawing area instead of widening the ranges, so the
    # ranges survive every resize (with the default, Plotly writes wider ranges back into the layout).
    axis = {"range": pad, "zeroline": False, "fixedrange": True, "constrain": "domain", **UNIT_TICKS}
    fig.update_layout(
        xaxis={"title": {"text": axis_title(x, maximize[ix])}, **axis},
        yaxis={"title": {"text": axis_title(y, maximize[iy])}, "scaleanchor": "x", "scaleratio": 1, **axis},
        margin={"l": 60, "r": 20, "t": 30, "b": 50}, height=480, showlegend=True,
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 11}},
        dragmode=False, hovermode="closest")
    return fig


def symbols(n: int, front: set[int]) -> list[str]:
    """Marker per candidate position: a diamond on the given front, an open circle behind it."""
    return ["diamond" if pos in front else "circle-open" for pos in range(n)]


def on_scale_of(rnd: Round, other: Round) -> np.ndarray:
    """Another round's plot columns (m, k + 1) on this round's normalised scale (beyond [0, 1] where it reaches
    further), so both rounds' points share one plot while this round's values stay what `ranking.rank` sees."""
    return scaled_onto(rnd, plot_matrix(other)[0])


def scaled_onto(rnd: Round, Q: np.ndarray) -> np.ndarray:
    """Raw plot columns Q (m, k + 1) of other answers (rewards, then score) on this round's normalised scale."""
    R, maximize = plot_matrix(rnd)
    R, Q = ranking.orient(R, maximize), ranking.orient(np.asarray(Q, np.float64), maximize)
    lo, span = R.min(axis=0), R.max(axis=0) - R.min(axis=0)
    flat = span <= 0.0
    out = (Q - lo) / np.where(flat, 1.0, span)
    out[:, flat] = 0.5 + (Q[:, flat] - lo[flat])  # a column constant in this round: offsets from its one value
    return out


def _with_previous(figure: dict, rnd: Round, previous: Round, ix: int, iy: int) -> list[list[float]]:
    """Add the previous round's points, faded, to a widget figure; widen its ranges to hold them. Their (x, y)."""
    P = on_scale_of(rnd, previous)[:, [ix, iy]]
    figure["data"].append({  # last, so the candidates keep their trace (and their clicks: this one skips hover)
        "type": "scatter", "x": P[:, 0].tolist(), "y": P[:, 1].tolist(), "mode": "markers",
        "name": "the round it was written from (faded)", "hoverinfo": "skip",
        "marker": {"size": 10, "color": "rgba(120,120,120,0.35)", "line": {"width": 1, "color": "rgba(60,60,60,0.4)"}}})
    for axis, col in (("xaxis", P[:, 0]), ("yaxis", P[:, 1])):
        lo, hi = figure["layout"][axis]["range"]
        figure["layout"][axis]["range"] = [min(lo, float(col.min()) - AXIS_PAD), max(hi, float(col.max()) + AXIS_PAD)]
    return P.tolist()


def widget_payload(rnd: Round, direction: Direction | None, x: str, y: str, learned: dict | None = None,
                   front: dict | None = None, previous: Round | None = None) -> dict:
    """Everything the browser needs to draw, drag and rerank (JSON-able).

    `values` (n, k + 1) are the normalised oriented plot columns; the first k are the round's objectives,
    over which `weights` (k,) and the browser's ranking run, with the same formulas as `ranking.scalarise`.
    `learned` (optional: angle, std in degrees over the plotted pair) draws the direction learned from votes;
    `front` (optional: hypervolume, best, rounds from `render.front_summary`) is said above the plot.
    `previous` (optional: the round a steered round was written from) is drawn faded on this round's scale.
    """
    names = plot_columns(rnd)
    Z = normalised(rnd)
    k = len(rnd.objectives)
    if direction is not None:
        weights = full_weights(rnd, direction)
    else:  # no gate to start from: the plotted pair, equally
        weights = np.zeros(k)
        weights[[j for j in (names.index(x), names.index(y)) if j < k]] = 1.0
        if not np.any(weights):
            weights[:] = 1.0
    method = direction.method if direction is not None else "linear"
    figure = json.loads(pareto_figure(rnd, x, y, learned=learned is not None).to_json())
    raw, maximize = plot_matrix(rnd)
    n = len(rnd.candidates)
    everywhere = set(pareto.non_dominated(raw[:, :k], rnd.maximize).tolist()) if n else set()
    ix, iy = names.index(x), names.index(y)
    faded = _with_previous(figure, rnd, previous, ix, iy) if previous is not None and n and previous.candidates \
        and plot_columns(previous) == names else None
    return {
        "round_id": rnd.round_id, "session_id": rnd.session_id, "status": rnd.status,
        "mode": rnd.params.mode, "previous": faded,
        "columns": names, "n_objectives": k, "maximize": list(rnd.maximize) + [True],
        "x": names.index(x), "y": names.index(y),
        "values": Z.tolist(), "raw": raw.tolist(),
        "indices": [c.index for c in rnd.candidates],
        "texts": [c.text[:HOVER_CHARS] for c in rnd.candidates],
        "colours": [colour(c.index) for c in rnd.candidates],
        "labels": [objectives.label(name, SCORE) for name in names],
        "descriptions": [objectives.meaning(name) if name != SCORE else "The reward model's own overall score: "
                         "its gate's weighting of the objectives for this prompt." for name in names],
        "weights": weights.tolist(), "method": method, "eps": ranking.TCHEBYCHEFF_EPS,
        "constants": {**OVERLAY, "sector_samples": ranking.SECTOR_SAMPLES, "sector_tol": ranking.SECTOR_TOL_DEG},
        "figure": figure, "learned": learned, "front": front,
        "symbols_pair": symbols(n, set(pareto.front_line(Z[:, [ix, iy]]).tolist()) if n else set()),
        "symbols_all": symbols(n, everywhere),
    }


def gating_figure(rnd: Round, trust: dict | None = None) -> go.Figure:
    """Bar chart of the gate's weights (k_model,) for this round's prompt; each bar's tooltip says how far that
    objective is to be trusted (trust: the reward model's held-out table, objectives.trust_note)."""
    k = len(rnd.gating)
    names = list(rnd.objectives[:k])
    notes = [objectives.trust_note(name, trust) for name in names]
    fig = new_figure(go.Bar(x=names, y=np.asarray(rnd.gating, dtype=np.float64), marker_color="#4c78a8",
                           customdata=[[n] for n in notes],
                           hovertemplate="%{x}: weight %{y:.3f}<br>%{customdata[0]}<extra></extra>"))
    fig.update_layout(title={"text": "What the reward model weighs for this prompt (gate)", "font": {"size": 13}},
                      yaxis={"title": {"text": "gating weight"}, "rangemode": "tozero"},
                      margin={"l": 50, "r": 10, "t": 40, "b": 80}, height=300)
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
        return new_figure()
    if direction is not None:
        best = ranking.rank(R, rnd.maximize, direction, rnd.objectives).best
    else:
        best = int(np.argmax(rnd.scores()))
    fig = new_figure()
    for pos, c in enumerate(rnd.candidates):
        raw = [f"{name}: {value:.4g}" + (f"<br>{escape(objectives.meaning(name))}" if objectives.meaning(name) else "")
               for name, value in zip(rnd.objectives, R[pos])]
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
        # every axis named, tilted so long names do not collide; the hover names the objective's meaning
        xaxis={"tickvals": list(range(k)), "range": [-0.5, k - 0.5],
               "ticktext": [name if up else f"{name} (cost)" for name, up in zip(rnd.objectives, rnd.maximize)],
               "tickangle": -30, "automargin": True, "showgrid": True, "gridcolor": "#bbb", "zeroline": False,
               "fixedrange": True},
        yaxis={"range": [-0.15, 1.15], "showticklabels": False, "showgrid": False, "zeroline": False,
               "fixedrange": True, "title": {"text": "normalised (up is better)"}},
        margin={"l": 40, "r": 10, "t": 45, "b": 40}, height=400, hovermode="closest",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "font": {"size": 10}})
    return fig


def comparison_bars(rnd: Round, a: int, b: int) -> go.Figure:
    """Comparison bars per plot column: candidates a and b, normalised (better is higher); A - B below."""
    pos = rnd.positions()
    names = plot_columns(rnd)
    raw, _ = plot_matrix(rnd)
    Z = normalised(rnd)
    za, zb = Z[pos[a]], Z[pos[b]]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.08,
                        subplot_titles=("normalised value in this round (better is higher)", "A − B"))
    for side, index, z in (("A", a, za), ("B", b, zb)):
        fig.add_trace(go.Bar(x=names, y=z, name=f"{side}: #{index}", marker_color=colour(index),
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
                      legend={"orientation": "h", "y": 1.16, "x": 0}, template=WHITE)
    return fig
