"""The comparison in Chromium on tiny models: generate, compare, vote four times, see the learned direction,
then find the votes in the database and in the `trl` export."""

from __future__ import annotations

import itertools
import json
import math
import re

import pytest

from mo_explorer import plotting
from mo_explorer.ui import compare_view
from tests.e2e.conftest import SCREENSHOTS
from tests.ui_support import served, tiny_explorer, tiny_settings

pytestmark = pytest.mark.e2e
TIMEOUT = 60_000  # ms; a 2-core CI machine shared with other jobs loads plotly.js slowly


@pytest.fixture(scope="module")
def app(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e_compare")
    settings = tiny_settings()
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp / "db.sqlite", tmp / "cache", settings)
    with served(explorer, settings) as url:
        yield explorer, url


def text_has(page, selector: str, needle: str) -> None:
    page.wait_for_function("([s, n]) => (document.querySelector(s)?.innerText || '').includes(n)",
                           arg=[selector, needle], timeout=TIMEOUT)


def vote(page, button: str, n: int) -> None:
    page.wait_for_function("(b) => !document.querySelector(b).disabled", arg=button, timeout=TIMEOUT)
    page.click(button)
    text_has(page, "#vote-status", f"Vote stored ({n} in this session)")


def compare_clicked(page, a: int, b: int) -> None:
    """Click two cards (waiting for each to open, so the page's 'last two clicked' is exact), then compare."""
    for index in (a, b):
        page.locator(f".moex-by-direction li[data-index='{index}']").click()
        text_has(page, "#response", f"Candidate #{index}")
    page.click("#compare-clicked")
    # the votes are disabled after each vote until a comparison is shown again: then both sides are the new ones
    page.wait_for_function("!document.querySelector('#vote-a').disabled", timeout=TIMEOUT)
    assert f"candidate #{a}" in page.inner_text("#side-a") and f"candidate #{b}" in page.inner_text("#side-b")


def test_compare_vote_learn_and_export(app, page):
    explorer, url = app
    page.goto(url)
    page.wait_for_function("new URL(location.href).searchParams.get('session')", timeout=TIMEOUT)
    session_id = page.evaluate("new URL(location.href).searchParams.get('session')")
    page.fill("#prompt textarea", "Describe a lighthouse")
    page.click("#generate")
    text_has(page, "#status", "Done")
    page.wait_for_function("document.querySelectorAll('.moex-by-direction li').length === 4", timeout=TIMEOUT)
    assert page.locator("#vote-a").is_disabled()  # nothing shown yet, nothing to vote on
    (rnd,) = explorer.session_rounds(session_id)

    page.click("#compare-open")
    shown = plotting.plane_default(rnd, explorer.default_direction(rnd), "helpful", "safe")  # what the arrow ranks by
    a, b = compare_view.default_pair(rnd, shown)
    text_has(page, "#side-a", f"candidate #{a}")
    text_has(page, "#side-b", f"candidate #{b}")
    text_has(page, "#compare-wins", "ranks first")
    vote(page, "#vote-a", 1)
    text_has(page, "#learned", "needs more votes")
    assert page.evaluate("document.querySelector('.moex').dataset.learnedAngle") == ""

    # three more pairs, picked by clicking cards; the first card of a pair is never the one open already
    chosen: list[tuple[int, int]] = []
    for x, y in [p for p in itertools.combinations(range(4), 2) if set(p) != {a, b}][:3]:
        chosen.append((y, x) if chosen and x == chosen[-1][1] else (x, y))
    outcomes = {"#vote-a": "a", "#vote-b": "b"}
    buttons = ["#vote-b", "#vote-a", "#vote-b"]
    for n, ((x, y), button) in enumerate(zip(chosen, buttons), start=2):
        compare_clicked(page, x, y)
        vote(page, button, n)

    page.wait_for_function("/explains \\d+(\\.5)? of 4 votes/.test(document.querySelector('#learned').innerText)",
                           timeout=TIMEOUT)
    agreement = re.search(r"explains (\S+) of 4 votes \(the reward model's gated score: (\S+) of 4\)",
                          page.inner_text("#learned"))
    learned = explorer.learned_direction(session_id)
    assert agreement and float(agreement.group(1)) == pytest.approx(learned.agreement * 4)
    assert float(agreement.group(2)) == pytest.approx(learned.gate_agreement * 4)
    page.wait_for_function("document.querySelector('.moex').dataset.learnedAngle !== ''", timeout=TIMEOUT)
    assert page.locator(".moex-learned-arrow").is_visible() and page.locator(".moex-learned-wedge").is_visible()
    raw = dict(zip(learned.direction.objectives, learned.fit.raw))
    drawn = float(page.evaluate("document.querySelector('.moex').dataset.learnedAngle"))
    assert drawn == pytest.approx(math.degrees(math.atan2(raw["safe"], raw["helpful"])) % 360, abs=0.01)
    assert page.locator("#use-mine").is_enabled()

    votes = explorer.store.list_votes(session_id)
    pairs_voted = [(a, b), *chosen]
    assert [(v.a_index, v.b_index) for v in votes] == pairs_voted
    assert [v.outcome for v in votes] == ["a", *(outcomes[btn] for btn in buttons)]
    trl = [json.loads(line) for line in explorer.export_session(session_id, "trl").splitlines()]
    assert len(trl) == 4
    texts = {c.index: c.text for c in rnd.candidates}
    for row, v in zip(trl, votes):
        win, lose = (v.a_index, v.b_index) if v.outcome == "a" else (v.b_index, v.a_index)
        assert row["chosen"][0]["content"] == texts[win] and row["rejected"][0]["content"] == texts[lose]
        assert row["prompt"][-1]["content"] == "Describe a lighthouse"

    page.click("#export-panel .label-wrap")
    page.click("#export")
    text_has(page, "#status", "Exported the session as trl: 4 preference pair(s)")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare_after_votes.png"), full_page=True)
    assert page.js_errors == []


def test_vote_and_export_through_the_api(app):
    from gradio_client import Client

    explorer, url = app
    rnd = explorer.run_round("Name a fruit")
    client = Client(url, verbose=False)
    said = client.predict(rnd.session_id, rnd.round_id, 1, 0, "b", api_name="/vote")
    assert "B (#0) is better than A (#1)" in said
    with pytest.raises(Exception, match="unknown round"):
        client.predict(explorer.new_session(), rnd.round_id, 0, 1, "a", api_name="/vote")
    path, status = client.predict(rnd.session_id, "trl", api_name="/export")
    (row,) = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert row["chosen"][0]["content"] == rnd.candidates[0].text and "1 preference pair" in status
