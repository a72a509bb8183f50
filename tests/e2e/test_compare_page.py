"""The comparison in Chromium on tiny models, used as in Chatbot Arena: keys for the next pair and the votes,
no lost click after a vote, the learned direction with its held-out count, then the votes in the database and
in the `trl` export."""

from __future__ import annotations

import json
import math

import pytest

from mo_explorer import plotting
from mo_explorer.ui import compare_view
from tests.e2e.conftest import SCREENSHOTS, TIMEOUT

pytestmark = pytest.mark.e2e




def text_has(page, selector: str, needle: str) -> None:
    page.wait_for_function("([s, n]) => (document.querySelector(s)?.innerText || '').includes(n)",
                           arg=[selector, needle], timeout=TIMEOUT)


def shown_pair(page) -> tuple[int, int]:
    a, b = (page.inner_text(s) for s in ("#side-a", "#side-b"))
    return int(a.split("candidate #")[1].split()[0]), int(b.split("candidate #")[1].split()[0])


def test_arena_keys_next_pair_no_lost_click_and_learned_direction(app, page):
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
    direction = plotting.plane_default(rnd, explorer.default_direction(rnd), "helpful", "safe")  # the arrow's

    page.locator("body").press("n")  # "next pair": the pair the arrow is least sure about
    first = compare_view.next_pair(rnd, direction, set())
    text_has(page, "#side-a", f"candidate #{first[0]}")
    assert shown_pair(page) == first
    assert "Describe a lighthouse" in page.inner_text("#compare-prompt")  # the prompt above both answers
    a_box, b_box = page.locator("#side-a").bounding_box(), page.locator("#side-b").bounding_box()
    votes_box = page.locator("#vote-a").bounding_box()
    assert abs(a_box["y"] - b_box["y"]) < 2 and a_box["x"] < b_box["x"]  # side by side
    assert 0 <= votes_box["y"] - (a_box["y"] + a_box["height"]) < 40  # the votes directly under them
    SCREENSHOTS.mkdir(exist_ok=True)
    page.locator("#compare-prompt").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "compare_desktop.png"))

    # "I press A, and the next pair is there; I press B at once, and that vote is on the new pair"
    page.locator("body").press("a")
    text_has(page, "#vote-status", "Vote stored (1 in this session)")
    second = shown_pair(page)
    assert second == compare_view.next_pair(rnd, direction, {frozenset(first)}) and set(second) != set(first)
    page.locator("body").press("b")
    text_has(page, "#vote-status", "Vote stored (2 in this session)")
    # a click on a card right after a vote opens it (the cards are not rebuilt under the pointer)
    third = shown_pair(page)
    page.locator(f".moex-by-direction li[data-index='{third[0]}']").click()
    text_has(page, "#response", f"Candidate #{third[0]}")
    page.click("#vote-b")
    text_has(page, "#vote-status", "Vote stored (3 in this session)")
    fourth = shown_pair(page)
    page.click("#vote-a")
    text_has(page, "#vote-status", "Vote stored (4 in this session)")

    votes = explorer.store.list_votes(session_id)
    assert [((v.a_index, v.b_index), v.outcome) for v in votes] == [(first, "a"), (second, "b"), (third, "b"),
                                                                    (fourth, "a")]
    # four decisive votes over five objectives: the page fits the plotted pair and counts held-out votes
    text_has(page, "#learned", "fit to 4 decisive votes")
    learned = compare_view.learned_for(explorer, session_id, rnd, "helpful", "safe")
    assert learned.direction.objectives == ("helpful", "safe")
    text_has(page, "#learned", f"{learned.held_out:g} of 4 held-out votes right")
    page.wait_for_function("document.querySelector('.moex').dataset.learnedAngle !== ''", timeout=TIMEOUT)
    raw = dict(zip(learned.direction.objectives, learned.fit.raw))
    drawn = float(page.evaluate("document.querySelector('.moex').dataset.learnedAngle"))
    assert drawn == pytest.approx(math.degrees(math.atan2(raw["safe"], raw["helpful"])) % 360, abs=0.01)
    assert page.locator(".moex-learned-arrow").is_visible() and page.locator(".moex-learned-wedge").is_visible()

    trl = [json.loads(line) for line in explorer.export_session(session_id, "trl").splitlines()]
    texts = {c.index: c.text for c in rnd.candidates}
    for row, v in zip(trl, votes):
        win, lose = (v.a_index, v.b_index) if v.outcome == "a" else (v.b_index, v.a_index)
        assert row["chosen"][0]["content"] == texts[win] and row["rejected"][0]["content"] == texts[lose]
    page.click("#export-panel .label-wrap")
    page.click("#export")
    text_has(page, "#export-status", "Exported the session as trl: 4 preference pair(s)")  # next to the button
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
