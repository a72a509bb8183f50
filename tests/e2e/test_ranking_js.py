"""The browser's ranking (assets/pareto.js) orders candidates exactly as mo_explorer.ranking does."""

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
    page.add_script_tag(path=str(WIDGET_JS))
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


def test_ring_sectors_are_the_cores_winning_intervals(page):
    """The coloured ring (linear, only the plotted pair weighted) shows ranking.winning_intervals' partition."""
    from mo_explorer.ui.assets import plotly_js

    page.set_content("<!doctype html><html><body style='width:900px'></body></html>")
    page.add_script_tag(path=str(plotly_js()))
    page.add_script_tag(path=str(WIDGET_JS))
    rnd = synthetic_round(np.random.default_rng(7).normal(size=(9, 5)))
    payload = plotting.widget_payload(rnd, Direction(("helpful", "safe"), (1.0, 1.0)), "helpful", "safe")
    page.evaluate("""(payload) => {
        const el = document.createElement('div'); document.body.append(el);
        MoExplorer.mount(el, { value: payload }, () => {}, { direction() {}, select() {} });
    }""", payload)
    page.wait_for_selector(".moex-sector", state="attached", timeout=30_000)
    sectors = page.evaluate("Array.from(document.querySelectorAll('.moex-sector'))"
                            ".map(s => [+s.dataset.index, +s.dataset.lo, +s.dataset.hi])")
    exact = ranking.winning_intervals(np.asarray(payload["values"])[:, :2])
    assert sectors[0][1] == 0 and sectors[-1][2] == 360
    for index, lo, hi in sectors:
        mid = (lo + hi) / 2
        assert any(a - 1 <= mid <= b + 1 for a, b in exact[index]), (index, lo, hi, exact[index])
    winners_js = {s[0] for s in sectors}
    winners_core = {i for i, ivs in enumerate(exact) if any(b - a > 1.0 for a, b in ivs)}
    assert winners_core <= winners_js  # every candidate that wins over more than a degree has its sector
