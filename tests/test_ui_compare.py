"""The side-by-side comparison: its pure views on synthetic rounds, then its handlers on tiny real models."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from mo_explorer import plotting, ranking
from mo_explorer.schema import Direction
from mo_explorer.ui import compare_view
from tests.ui_support import synthetic_round, tiny_page

R = np.array([[0.9, 0.1, 0.5, 120, 2.0],
              [0.2, 0.8, 0.4, 30, 1.0],
              [0.5, 0.5, 0.9, 60, 3.0],
              [0.1, 0.1, 0.1, 20, 4.0]])


# ----- pure views -----------------------------------------------------------------------------------------
def test_default_pair_is_gate_winner_then_direction_winner_or_runner_up():
    rnd = synthetic_round(R, scores=[0.1, 0.9, 0.3, 0.0])
    assert compare_view.default_pair(rnd, Direction(("helpful",), (1.0,))) == (1, 0)
    # the direction also prefers #1: B is the direction's runner-up
    assert compare_view.default_pair(rnd, Direction(("safe", "helpful"), (1.0, 0.3))) == (1, 2)
    with pytest.raises(ValueError, match="two candidates"):
        compare_view.default_pair(synthetic_round(R[:1]), None)


def test_wins_text_is_the_rings_winning_sectors_with_the_pages_direction():
    rnd = synthetic_round(R)
    for direction in (None, Direction(("helpful", "safe"), (1.0, 1.0), "tchebycheff"),
                      Direction(("helpful", "safe", "concise"), (1.0, 0.0, 0.6))):
        text = compare_view.wins_markdown(rnd, 0, 2, "helpful", "safe", direction)
        weights = plotting.full_weights(rnd, direction) if direction else [1.0, 1.0, 0, 0, 0]
        method = direction.method if direction else "linear"
        sectors = ranking.winning_sectors(plotting.normalised(rnd)[:, :5], weights, 0, 1, method)
        for side, pos in (("A", 0), ("B", 2)):
            arcs = [(lo, hi) for lo, hi in compare_view._arcs([(lo, hi) for p, lo, hi in sectors if p == pos])
                    if hi - lo > 1e-6]
            if not arcs:
                assert f"**{side}** (#{pos}) ranks first at no angle" in text
            for lo, hi in arcs:
                assert f"{lo:.0f}°–{hi - 360 if hi > 360 else hi:.0f}°" in text
    assert "**B** (#2) ranks first at no angle" in compare_view.wins_markdown(rnd, 0, 2, "helpful", "safe", None)
    assert compare_view._arcs([(0.0, 20.0), (100.0, 120.0), (350.0, 360.0)]) == [(350.0, 380.0), (100.0, 120.0)]
    assert "Put two different objectives" in compare_view.wins_markdown(rnd, 0, 3, "helpful", "helpful", None)


def test_next_pair_is_the_one_the_direction_is_least_sure_about_and_skips_voted_pairs():
    rnd = synthetic_round(R)
    d = Direction(("helpful", "safe"), (1.0, 1.0))
    values = plotting.normalised(rnd)[:, :2].sum(axis=1)
    a, b = compare_view.next_pair(rnd, d, set())
    gaps = {frozenset((i, j)): abs(values[i] - values[j]) for i in range(4) for j in range(i + 1, 4)}
    assert gaps[frozenset((a, b))] == min(gaps.values()) and values[a] >= values[b]
    c, e = compare_view.next_pair(rnd, d, {frozenset((a, b))})
    assert {c, e} != {a, b}


def test_sides_are_escaped_markdown_and_bars_hold_both_and_their_difference():
    rnd = synthetic_round(R, texts=["<script>x()</script> **hi**", "b", "c", "d"])
    md = compare_view.side_markdown(rnd, 0, "A")
    assert "<script>" not in md and "&lt;script&gt;" in md and "**hi**" in md and md.startswith("### A")
    fig = plotting.comparison_bars(rnd, 0, 2)
    a, b, diff = fig.data
    Z = plotting.normalised(rnd)
    np.testing.assert_allclose(a.y, Z[0])
    np.testing.assert_allclose(diff.y, Z[0] - Z[2])
    assert list(a.x) == plotting.plot_columns(rnd) and b.name == "B: #2"


def test_overlay_angle_std_matches_the_fit_for_two_objectives_and_sampling_for_more():
    rng = np.random.default_rng(0)
    diffs = rng.normal(size=(30, 2))
    fit = ranking.fit_direction(diffs, (diffs @ [0.6, 0.8] > 0).astype(float))
    rnd = synthetic_round(R[:, :2], names=("helpful", "safe"), maximize=(True, True), k_model=2)
    direction = Direction(("helpful", "safe"), tuple(fit.weights))
    out = compare_view.learned_overlay(rnd, direction, fit.covariance, fit.raw, "helpful", "safe")
    assert out["angle"] == pytest.approx(ranking.weights_to_angle(fit.weights))
    assert out["std"] == pytest.approx(fit.angle_std_deg) and out["share"] == pytest.approx(1.0)

    # k = 5: the delta method on the projection agrees with sampling N(raw, cov) and projecting
    raw = np.array([1.0, 0.8, -0.3, 0.2, 0.1])
    A = rng.normal(size=(5, 5)) * 0.08
    cov = A @ A.T + 0.01 * np.eye(5)
    direction = Direction(("helpful", "safe", "concise", "length_tokens", "gen_seconds"),
                          tuple(raw / np.linalg.norm(raw)))
    out = compare_view.learned_overlay(synthetic_round(R), direction, cov, raw, "safe", "helpful")
    samples = rng.multivariate_normal(raw, cov, size=20000)
    angles = np.degrees(np.arctan2(samples[:, 0], samples[:, 1]))  # x = safe, y = helpful
    assert out["angle"] == pytest.approx(math.degrees(math.atan2(1.0, 0.8)), abs=1e-9)
    assert out["std"] == pytest.approx(np.std(angles), rel=0.1)
    assert compare_view.learned_overlay(synthetic_round(R), direction, cov, raw, "helpful", "score") is None


def test_learned_text_says_not_enough_votes_then_counts_held_out_votes():
    text = compare_view.learned_markdown(None, 1, 5)
    assert "not enough votes yet" in text and "needs 3; all 5 objectives need 6" in text
    learned = SimpleNamespace(n_votes=4, agreement=1.0, gate_agreement=0.5, held_out=3.0,
                              direction=Direction(("helpful", "safe"), (0.6, 0.8)))
    text = compare_view.learned_markdown(learned, 4, 5)
    assert "**3 of 4** held-out votes" in text and "score agrees with 2 of 4" in text and "safe +0.80" in text
    assert "plotted pair only" in text


# ----- handlers on tiny models ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    return tiny_page(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory.mktemp("ui_compare"))


@pytest.fixture(scope="module")
def round_(page):
    updates = list(page.h.generate("Write a haiku", 5, 1.0, 1.0, 4, 3, "", None, None))
    rnd_id = updates[-1][page.c.round_id]
    return page.explorer.get_round(rnd_id, updates[-1][page.c.widget]["session_id"])


def click(page, elem_id):
    return gr.EventData(next(b for b in page.cc.votes if b.elem_id == elem_id), {})


def test_compare_then_vote_shows_the_next_pair_and_learns_the_direction(page, round_):
    cc, ch, c = page.cc, page.ch, page.c
    sid, rid = round_.session_id, round_.round_id
    shown = ch.open_default(sid, rid, None, None)
    a, b = compare_view.default_pair(round_, page.h.direction_of(round_))
    assert (shown[cc.a_pick].value, shown[cc.b_pick].value) == (a, b) and shown[cc.pair_round] == rid
    assert f"candidate #{a}" in shown[cc.a_text] and f"candidate #{b}" in shown[cc.b_text]
    assert "Write a haiku" in shown[cc.prompt]  # the prompt above both answers
    assert all(shown[button].interactive for button in cc.votes)  # enabled once both texts are shown
    assert "ranks first" in shown[cc.wins] and shown[cc.bars] is not None

    # every vote prefers more helpful + safe, so the votes agree with one direction and never cancel out
    better = plotting.normalised(round_)[:, :2].sum(axis=1)
    pos = compare_view.positions(round_)

    def side(x, y):
        return "a" if better[pos[x]] > better[pos[y]] else "b"

    out = ch.vote(sid, rid, a, b, None, None, click(page, f"vote-{side(a, b)}"))
    (vote,) = page.explorer.store.list_votes(sid)
    assert (vote.a_index, vote.b_index, vote.outcome) == (a, b, side(a, b))
    assert vote.direction == page.explorer.get_round(rid, sid).direction
    # the same reply shows the next pair, votes enabled: the next click lands on it
    nxt = compare_view.next_pair(round_, page.h.direction_of(round_), {frozenset((a, b))})
    assert (out[cc.a_pick].value, out[cc.b_pick].value) == nxt and "Vote stored (1" in out[cc.vote_status]
    assert all(out[button].interactive for button in cc.votes)
    first = ch.refresh_learned(sid, rid, None, None)
    assert "not enough votes yet" in first[cc.learned] and not first[cc.use_mine].interactive
    assert first[c.widget]["learned"] is None

    ch.vote(sid, rid, 3, 4, None, None, click(page, f"vote-{side(3, 4)}"))
    ch.vote(sid, rid, 0, 2, None, None, click(page, "vote-tie"))  # not decisive: left out of the fit
    assert "is better" in ch.api_vote(sid, rid, 4, 1, side(4, 1))  # an API caller passes the outcome itself
    after = ch.refresh_learned(sid, rid, "helpful", "safe")
    learned = compare_view.learned_for(page.explorer, sid, round_, "helpful", "safe")
    assert learned.n_votes == 3 and learned.direction.objectives == ("helpful", "safe")  # 3 votes: the pair only
    assert "held-out votes right" in after[cc.learned] and after[cc.use_mine].interactive
    overlay = after[c.widget]["learned"]
    raw = dict(zip(learned.direction.objectives, learned.fit.raw))
    assert overlay["angle"] == pytest.approx(math.degrees(math.atan2(raw["safe"], raw["helpful"])) % 360)

    used = ch.use_mine(sid, rid, "helpful", "safe")
    assert page.explorer.get_round(rid, sid).direction == learned.direction
    assert "Using your direction" in used[c.status] and used[c.widget]["learned"] == overlay


def test_votes_outside_the_session_or_round_are_refused(page, round_):
    other = page.explorer.new_session()
    with pytest.raises(gr.Error, match="unknown round"):
        page.ch.vote(other, round_.round_id, 0, 1, None, None, click(page, "vote-a"))
    with pytest.raises(gr.Error, match="no candidate 9"):
        page.ch.api_vote(round_.session_id, round_.round_id, 0, 9, "a")
    with pytest.raises(gr.Error, match="not in this round"):
        page.ch.open_picked(0, 9, round_.session_id, round_.round_id, None, None, None)
    with pytest.raises(gr.Error, match="Click two points"):
        page.ch.open_clicked(round_.session_id, round_.round_id, [1], None, None)
    assert page.explorer.store.list_votes(other) == []


def test_export_files_and_import_switches_to_a_new_session(page, round_):
    sid = round_.session_id
    path, status = page.ch.export(sid, "trl")
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    decisive = [v for v in page.explorer.store.list_votes(sid) if v.outcome in ("a", "b")]
    assert len(lines) == len(decisive) >= 1 and set(lines[0]) == {"prompt", "chosen", "rejected"}
    assert "ties and both-bad" in status and Path(path).suffix == ".jsonl"
    assert Path(page.ch.export(sid, "csv")[0]).read_text().startswith("round_id,")
    json_path, _ = page.ch.export(sid, "json")
    out = page.ch.import_session(json_path)
    new_id = out[page.c.session]
    assert new_id != sid and "Imported" in out[page.c.status]
    assert len(page.explorer.store.list_votes(new_id)) == len(page.explorer.store.list_votes(sid))
    assert out[page.c.widget]["session_id"] == new_id
    bad = Path(json_path).with_name("bad.json")
    bad.write_text("{not json")
    with pytest.raises(gr.Error, match="not a JSON session export"):
        page.ch.import_session(str(bad))
