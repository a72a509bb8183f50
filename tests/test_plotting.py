"""Figures and the widget payload: the same normalised values as ranking, fronts from pareto, inert text."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mo_explorer import pareto, plotting, ranking
from mo_explorer.schema import Direction
from tests.ui_support import MAXIMIZE, NAMES, synthetic_round

R = np.array([[0.9, 0.1, 0.5, 120, 2.0],
              [0.2, 0.8, 0.4, 30, 1.0],
              [0.5, 0.5, 0.9, 60, 3.0],
              [0.1, 0.1, 0.1, 130, 4.0]])  # dominated: worst on every objective, costs included


def test_plotting_does_not_import_gradio():
    code = "import sys, mo_explorer.plotting; print('gradio' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_payload_values_are_rankings_normalised_oriented_columns():
    rnd = synthetic_round(R, scores=[0.3, 0.1, 0.7, 0.0])
    payload = plotting.widget_payload(rnd, None, "helpful", "safe")
    json.dumps(payload)  # must reach the browser as JSON
    assert payload["columns"] == [*NAMES, "score"] and payload["n_objectives"] == 5
    Z = np.asarray(payload["values"])
    expected = ranking.normalise(ranking.orient(R, MAXIMIZE))
    np.testing.assert_allclose(Z[:, :5], expected, atol=1e-6)
    assert Z[3, 4] == 0.0 and Z[1, 4] == 1.0  # gen_seconds is a cost: the slowest is 0, the fastest 1
    np.testing.assert_allclose(Z[:, 5], [3 / 7, 1 / 7, 1.0, 0.0], atol=1e-6)  # the gated score column
    # no direction: the plotted pair, equally; objectives off the plot weigh nothing until pinned
    assert payload["weights"] == [1.0, 1.0, 0.0, 0.0, 0.0] and payload["method"] == "linear"
    assert payload["labels"][-1] == "reward model's score" and payload["constants"]["sector_samples"] == 720
    assert (payload["x"], payload["y"]) == (0, 1)


def test_payload_spreads_a_direction_over_all_objectives():
    rnd = synthetic_round(R)
    d = Direction(("safe", "gen_seconds"), (0.6, -0.8), "tchebycheff")
    payload = plotting.widget_payload(rnd, d, "safe", "score")
    assert payload["weights"] == [0.0, 0.6, 0.0, 0.0, -0.8] and payload["method"] == "tchebycheff"
    assert (payload["x"], payload["y"]) == (1, 5)
    with pytest.raises(ValueError, match="does not have"):
        plotting.full_weights(rnd, Direction(("nope",), (1.0,)))


@pytest.mark.parametrize("method", ["linear", "tchebycheff"])
def test_zero_weights_do_not_change_the_ranking(method):
    """The browser ranks with every objective (zeros for the unnamed ones); ranking.rank uses the named ones."""
    rng = np.random.default_rng(0)
    rnd = synthetic_round(rng.normal(size=(12, 5)))
    for _ in range(20):
        d = Direction(("helpful", "concise"), tuple(rng.normal(size=2)), method)
        full = Direction(NAMES, tuple(plotting.full_weights(rnd, d)), method)
        a = ranking.rank(rnd.reward_matrix(), MAXIMIZE, d, NAMES)
        b = ranking.rank(rnd.reward_matrix(), MAXIMIZE, full, NAMES)
        np.testing.assert_array_equal(a.order, b.order)


def test_pareto_figure_points_front_and_ideal():
    rnd = synthetic_round(R)
    fig = plotting.pareto_figure(rnd, "helpful", "safe")
    star, front, points = fig.data[:3]
    legend = {t.name: t for t in fig.data[3:]}
    assert all(t.x == (None,) for t in legend.values())  # legend entries only: the overlay is drawn by the browser
    assert {"your direction (drag its head)", "ring: who ranks first at each angle",
            "equal score to the top-ranked (none beyond it)"} <= set(legend)
    Z = plotting.normalised(rnd)
    np.testing.assert_allclose(points.x, Z[:, 0])
    np.testing.assert_allclose(points.y, Z[:, 1])
    assert list(points.customdata) == [0, 1, 2, 3]
    idx = pareto.front_line(Z[:, :2])
    np.testing.assert_allclose(front.x, Z[idx, 0])
    # diamonds on the front of the plotted pair, open circles behind it; the all-objective front is an option
    assert [s == "diamond" for s in points.marker.symbol] == [i in set(idx) for i in range(4)]
    payload = plotting.widget_payload(rnd, None, "helpful", "safe")
    everywhere = set(pareto.non_dominated(R, MAXIMIZE).tolist())
    assert [s == "diamond" for s in payload["symbols_all"]] == [i in everywhere for i in range(4)]
    assert 3 not in everywhere  # dominated by candidate 1 on every objective
    # the ideal corner is drawn first, below the points, and takes no hover or click
    assert (star.x, star.y, star.hoverinfo, star.marker.symbol) == ((1.0,), (1.0,), "skip", "star")
    assert not fig.layout.shapes  # no {"path": ...} in a reply: gradio_client would fetch it as a file
    assert fig.layout.yaxis.scaleanchor == "x"  # equal aspect: the arrow's angle on screen is the direction's
    assert fig.layout.xaxis.constrain == fig.layout.yaxis.constrain == "domain"  # ranges survive resizes
    assert "learned from your votes (±1 std)" in {t.name for t in
                                                  plotting.pareto_figure(rnd, "helpful", "safe", learned=True).data}
    with pytest.raises(ValueError, match="unknown plot column"):
        plotting.pareto_figure(rnd, "helpful", "nope")


def test_axis_ticks_are_the_normalised_values_the_title_names():
    rnd = synthetic_round(R)
    fig = plotting.pareto_figure(rnd, "helpful", "gen_seconds")
    assert list(fig.layout.xaxis.tickvals) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert "0 = worst, 1 = best" in fig.layout.xaxis.title.text
    assert "a cost" in fig.layout.yaxis.title.text and "1 = lowest" in fig.layout.yaxis.title.text
    assert "length_tokens: 120" in plotting.hover_texts(rnd)[0]  # raw values on hover


def test_plane_default_keeps_only_the_plotted_pair():
    rnd = synthetic_round(R)
    gate = Direction(("helpful", "safe", "concise"), (0.2, 0.5, 0.9))
    assert plotting.plane_default(rnd, gate, "helpful", "safe") == Direction(("helpful", "safe"), (0.2, 0.5))
    assert plotting.plane_default(rnd, gate, "length_tokens", "gen_seconds").weights == (1.0, 1.0)
    assert plotting.plane_default(rnd, gate, "helpful", "score") == gate  # no arrow on the score axis


def test_hover_texts_are_inert():
    rnd = synthetic_round(R, texts=["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "a & b", ""])
    hover = plotting.hover_texts(rnd)
    assert "<script" not in hover[0] and "&lt;script&gt;" in hover[0]
    assert "<img" not in hover[1] and "&lt;img" in hover[1]
    assert "a &amp; b" in hover[2] and "(empty response)" in hover[3]


def test_gating_and_parallel_figures():
    rnd = synthetic_round(R)
    bars = plotting.gating_figure(rnd).data[0]
    assert list(bars.x) == ["helpful", "safe", "concise"]
    np.testing.assert_allclose(bars.y, rnd.gating)
    par = plotting.parallel_figure(rnd, Direction(("safe",), (1.0,)))
    assert list(par.layout.xaxis.ticktext) == [*NAMES[:3], "length_tokens (cost)", "gen_seconds (cost)"]
    assert len(par.data) == 4
    np.testing.assert_allclose(par.data[3].y, plotting.normalised(rnd)[3, :5])
    assert par.data[3].y[4] == 0.0  # the slowest candidate sits at the bottom of the gen_seconds axis
    assert [t.line.width for t in par.data] == [1.5, 4, 1.5, 1.5]  # the direction's best (#1, safest) is thick
    assert [t.line.width for t in plotting.parallel_figure(rnd, None).data].index(4) == 2  # else the best score
    labels = {(a.x, a.y): a.text for a in par.layout.annotations}
    assert labels[(4, 0.0)] == "4" and labels[(4, 1.0)] == "1"  # raw values: worst at the bottom of a cost
    assert len(plotting.parallel_figure(synthetic_round(R[:0].reshape(0, 5)), None).data) == 0


def test_every_figure_passes_plotlys_validators():
    """Figures are built without plotly's property checks (new_figure, for speed under load); rebuilt from their
    JSON with the checks on, each must pass, and a figure with a wrong property must not."""
    import plotly.graph_objects as go

    rnd = synthetic_round(R)
    x, y = plotting.plot_columns(rnd)[:2]
    figures = [plotting.pareto_figure(rnd, x, y, learned=True), plotting.gating_figure(rnd),
               plotting.parallel_figure(rnd, Direction(("safe",), (1.0,))), plotting.comparison_bars(rnd, 0, 1)]
    for fig in figures:
        checked = go.Figure(fig.to_plotly_json())
        assert checked.layout.template.layout.plot_bgcolor == "white"  # the plotly_white look, as before
    broken = go.Figure(layout={"template": plotting.WHITE, "xaxis": {"rnage": [0, 1]}}, _validate=False)  # a typo
    with pytest.raises(ValueError, match="rnage"):
        go.Figure(broken.to_plotly_json())
