"""The browser's ranking (assets/pareto/*.js) orders candidates exactly as mo_explorer.ranking does."""

from __future__ import annotations

import numpy as np
import pytest

from mo_explorer import plotting, ranking
from mo_explorer.schema import Direction
from mo_explorer.ui.assets import WIDGET_JS
from tests.ui_support import MAXIMIZE, NAMES, synthetic_round

pytestmark = pytest.mark.e2e


def test_js_ranking_matches_the_core(page):
    page.set_content("<!doctype html><html><body></body></html>")
    for part in WIDGET_JS:
        page.add_script_tag(path=str(part))
    rng = np.random.default_rng(42)
    checked = 0
    for trial in range(6):
        R = rng.normal(size=(int(rng.integers(2, 20)), 5))
        if trial == 0:
            R[:, 2] = 1.5  # a constant column: normalised to 0.5 for everyone
        rnd = synthetic_round(R)
        payload = plotting.widget_payload(rnd, None, "helpful", "safe")
        for method in ("linear", "tchebycheff"):
            directions = []
            for _ in range(15):
                named = [n for n in NAMES if rng.random() < 0.7] or ["safe"]
                directions.append(Direction(tuple(named), tuple(rng.normal(size=len(named))), method))
            weights = [plotting.full_weights(rnd, d).tolist() for d in directions]  # what the widget ranks with
            js = page.evaluate("([p, ws, m]) => ws.map((w) => MoExplorer.rankOrder(p, w, m))",
                               [payload, weights, method])
            for d, order in zip(directions, js):
                assert order == ranking.rank(rnd.reward_matrix(), MAXIMIZE, d, NAMES).order.tolist(), d
                checked += 1
    assert checked == 180


def test_js_winning_sectors_match_the_core_with_ties_pins_and_both_methods(page):
    page.set_content("<!doctype html><html><body></body></html>")
    for part in WIDGET_JS:
        page.add_script_tag(path=str(part))
    rng = np.random.default_rng(11)
    checked = 0
    for trial in range(5):
        R = rng.normal(size=(int(rng.integers(2, 12)), 4))
        R[1] = R[0]  # an exact duplicate: the lower index wins the tie, in both languages
        if trial == 1:
            R[:, 1] = 0.3  # a constant column (all 0.5 after normalising): ties along a whole axis
        Z = ranking.normalise(R)
        for method in ("linear", "tchebycheff"):
            w = [0.0, 0.0, *(rng.normal(size=2) * (trial % 2))]  # pins on odd trials
            js = page.evaluate("([Z, w, m, eps, n, tol]) => MoExplorer.winningSectors(Z, w, 0, 1, m, eps, n, tol)",
                               [Z.tolist(), w, method, ranking.TCHEBYCHEFF_EPS, ranking.SECTOR_SAMPLES,
                                ranking.SECTOR_TOL_DEG])
            core = ranking.winning_sectors(Z, w, 0, 1, method)
            assert [s[0] for s in js] == [s[0] for s in core], (trial, method)
            np.testing.assert_allclose([s[1:] for s in js], [s[1:] for s in core], atol=1e-6)
            assert 1 not in {s[0] for s in core}  # the duplicate never wins
            checked += 1
    assert checked == 10


@pytest.mark.parametrize("method", ["linear", "tchebycheff"])
def test_drawn_ring_is_the_cores_winning_sectors(page, method):
    """The coloured ring shows ranking.winning_sectors: the whole circle (linear) or, round the reference
    corner, the quarter of directions that want more of both axes (Tchebycheff)."""
    from mo_explorer.ui.assets import plotly_js

    page.set_content("<!doctype html><html><body style='width:900px'></body></html>")
    page.add_script_tag(path=str(plotly_js()))
    for part in WIDGET_JS:
        page.add_script_tag(path=str(part))
    rnd = synthetic_round(np.random.default_rng(7).normal(size=(9, 5)))
    payload = plotting.widget_payload(rnd, Direction(("helpful", "safe"), (1.0, 1.0), method), "helpful", "safe")
    page.evaluate("""(payload) => {
        const el = document.createElement('div'); document.body.append(el);
        MoExplorer.mount(el, { value: payload }, () => {}, { direction() {}, select() {} });
    }""", payload)
    page.wait_for_selector(".moex-sector", state="attached", timeout=30_000)
    drawn = page.evaluate("Array.from(document.querySelectorAll('.moex-sector'))"
                          ".map(s => [+s.dataset.index, +s.dataset.lo, +s.dataset.hi])")
    core = ranking.winning_sectors(np.asarray(payload["values"])[:, :5], payload["weights"], 0, 1, method)
    if method == "linear":
        if core[0][0] == core[-1][0] and len(core) > 1:  # drawn as one arc through 0°
            core = [(core[-1][0], core[-1][1], core[0][2] + 360.0), *core[1:-1]]
    else:
        core = [(i, max(lo, 0.0), min(hi, 90.0)) for i, lo, hi in core if lo < 90.0]
    assert [d[0] for d in drawn] == [c[0] for c in core]
    np.testing.assert_allclose([d[1:] for d in drawn], [c[1:] for c in core], atol=1e-9)


@pytest.mark.parametrize("method", ["linear", "tchebycheff"])
def test_points_moved_by_pinned_weights_rank_on_the_plot_as_the_full_weights_do(page, method):
    """Where the widget draws each point once off-plot weights are pinned (its dashed ghost): ranked by the
    plotted pair alone, the ghosts come first in the same order as the candidates under all the weights."""
    page.set_content("<!doctype html><html><body></body></html>")
    for part in WIDGET_JS:
        page.add_script_tag(path=str(part))
    rng = np.random.default_rng(3)
    for trial in range(8):
        rnd = synthetic_round(rng.normal(size=(int(rng.integers(3, 12)), 5)))
        w = [*rng.normal(size=2), *(rng.normal(size=3) * 0.7)]
        payload = plotting.widget_payload(rnd, Direction(NAMES, tuple(w), method), "helpful", "safe")
        eff = np.asarray(page.evaluate("([p, w, m]) => MoExplorer.geometry.effective(p, w, m, p.eps)",
                                       [payload, w, method]))  # (n, 2)
        full = ranking.rank(rnd.reward_matrix(), MAXIMIZE, Direction(NAMES, tuple(w), method), NAMES).best
        if method == "linear":
            shown = eff @ np.asarray(w[:2])
        else:  # Tchebycheff in the plane, against the real points' reference corner
            Z = np.asarray(payload["values"])[:, :2]
            s = np.where(np.asarray(w[:2]) < 0, -1.0, 1.0)
            z = (s * Z).max(axis=0) + ranking.TCHEBYCHEFF_EPS
            shown = -np.max(np.abs(w[:2]) * (z - s * eff), axis=1)
        assert np.isclose(shown[full], shown.max(), atol=1e-9), (trial, full, shown)
