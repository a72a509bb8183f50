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
