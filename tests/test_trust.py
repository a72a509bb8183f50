"""Trust shown where the user reads the numbers: each objective's held-out, length-balanced accuracy beside its
name (axis menus, the gate's bar tooltips), weak signals called so, and one line on the score itself."""

from __future__ import annotations

import json

import numpy as np

from mo_explorer import config, objectives, plotting
from tests.ui_support import synthetic_round

TRUST = {"objectives": {"helpful": 0.63, "safe": 0.52, "verbosity": 0.5},
         "score": {"balanced_mean": 0.61, "balanced_worst": 0.56}}


def test_a_strong_objective_shows_its_accuracy_and_a_weak_one_is_called_weak():
    assert objectives.menu_label("helpful", trust=TRUST) == "helpful (63% held-out)"
    assert objectives.menu_label("safe", trust=TRUST) == "safe (weak, 52% held-out)"
    assert objectives.trust_note("safe", TRUST).startswith("weak signal: 52%")
    # Length is measured, not judged: its "accuracy" is 50 by construction and is not shown as one.
    assert objectives.menu_label("verbosity", trust=TRUST) == "verbosity"
    assert objectives.trust_note("verbosity", TRUST) == "measured, not judged"
    # A model that reports nothing shows names alone.
    assert objectives.menu_label("helpful", trust={}) == "helpful" and objectives.trust_line({}) == ""


def test_the_page_says_in_one_line_how_far_the_score_is_to_be_trusted():
    line = objectives.trust_line(TRUST)
    assert "61%" in line and "chance is 50%" in line and "worst source 56%" in line
    assert "Weak signals: safe." in line and "helpful" not in line.split("Weak signals:")[1]


def test_each_gate_bar_says_how_far_its_objective_is_to_be_trusted():
    rnd = synthetic_round(np.random.default_rng(0).normal(size=(4, 5)))
    bar = plotting.gating_figure(rnd, TRUST).data[0]
    notes = dict(zip(bar.x, (row[0] for row in bar.customdata)))
    assert notes["helpful"].startswith("63% right") and notes["safe"].startswith("weak signal")
    assert "customdata" in bar.hovertemplate


def test_the_shipped_head_reports_a_trust_entry_for_every_objective_it_judges():
    extra = json.loads((config.EMBEDDED_HEAD_DIR / "config.json").read_text())["extra"]
    trust = extra["trust"]
    judged = [n for n in extra["training"]["objectives"] if n not in objectives.MEASURED]
    assert set(judged) <= set(trust["objectives"])
    assert 0.0 < trust["score"]["balanced_worst"] <= trust["score"]["balanced_mean"] < 1.0
