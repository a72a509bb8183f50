"""What you drag is what ranks, checked in Chromium on the page a person sees: point the arrow, read the
list's first, the marker farthest along the arrow, and the ring sector under the arrow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mo_explorer.schema import Candidate, GenerationParams
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.steering_support import (
    FRONT,
    NAMES,
    TIMEOUT,
    aim_at,
    arrow,
    data,
    farthest_along_arrow,
    listed_first,
    points,
    ring_under_arrow,
    store_round,
    turn_arrow_to,
    winner_name_clear_of_handle,
)
from tests.servers import poll

README_PICTURE = SCREENSHOTS.parent / "assets" / "screenshot.png"  # the page at the top of the README

pytestmark = pytest.mark.e2e




def open_round(page, url, session_id):
    page.goto(f"{url}?session={session_id}")
    page.wait_for_selector(".moex-arrow-handle", timeout=TIMEOUT)
    page.wait_for_function("document.querySelectorAll('.moex-by-direction li').length > 0", timeout=TIMEOUT)


def test_linear_at_36_angles_the_first_is_the_point_farthest_along_the_arrow(app, page):
    explorer, url = app
    session_id, _ = store_round(explorer)
    open_round(page, url, session_id)
    firsts = set()
    for theta in range(0, 360, 10):
        turn_arrow_to(page, theta)
        first = data(page, "top")
        along, best = farthest_along_arrow(page)
        # "I point the arrow this way; the first in the list is the point farthest along it on the plot"
        assert along[int(first)] >= best - 0.75, (theta, first, along)
        assert listed_first(page) == first, theta
        assert ring_under_arrow(page) == [first], theta  # the ring under the arrow names the list's first
        assert winner_name_clear_of_handle(page) == (f"#{first}", True), theta  # and the plot names it, uncovered
        firsts.add(first)
    assert page.locator(".moex-plot .modebar-btn[data-title*='png' i]").count() == 1  # Plotly's PNG download stays
    assert "2" not in firsts  # the dent is never first with a linear score...
    assert firsts >= {"0", "1", "3", "4", "5"}  # ...but every hull vertex is (#5 when less of both is wanted)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "steering_linear_desktop.png"))
    # The README's picture of the page is this one, written anew by every run so it never goes stale.
    page.screenshot(path=str(README_PICTURE))
    assert page.js_errors == []


def test_tchebycheff_pointing_from_the_corner_through_a_front_candidate_makes_it_first(app, page):
    explorer, url = app
    session_id, _ = store_round(explorer)
    open_round(page, url, session_id)
    page.select_option(".moex-method", "tchebycheff")
    page.wait_for_function("document.querySelector('.moex').dataset.method === 'tchebycheff'", timeout=TIMEOUT)
    for k in FRONT:  # the concave dent #2 included
        target = points(page)[k]
        aim_at(page, target)
        page.wait_for_function("(k) => document.querySelector('.moex').dataset.top === k", arg=str(k), timeout=TIMEOUT)
        (x1, y1), (x2, y2) = arrow(page)
        target = points(page)[k]
        # the arrow leaves the corner and passes through #k (within a pixel)
        off_line = abs((x2 - x1) * (y1 - target[1]) - (x1 - target[0]) * (y2 - y1)) / math.hypot(x2 - x1, y2 - y1)
        assert off_line < 1.0, (k, off_line)
        assert listed_first(page) == str(k)
        assert ring_under_arrow(page) == [str(k)], k
        assert winner_name_clear_of_handle(page) == (f"#{k}", True), k
    # the server's reply to the last release says the same first (the screenshot showed the previous reply)
    page.wait_for_function("(k) => document.querySelector('#direction-status').innerText.includes('first: #' + k)",
                           arg=str(FRONT[-1]), timeout=TIMEOUT)
    page.screenshot(path=str(SCREENSHOTS / "steering_tchebycheff_desktop.png"))
    # "prefer less" of an axis (the angle slider): the arrow then starts at another corner, and still its ring
    # sector names the list's first
    for theta in (135, 200, 300):
        page.locator(".moex-angle").fill(str(theta))
        page.wait_for_function("(t) => Math.abs(+document.querySelector('.moex').dataset.angle - t) < 0.5",
                               arg=theta, timeout=TIMEOUT)
        first = data(page, "top")
        assert listed_first(page) == first and ring_under_arrow(page) == [first], theta
    stored = explorer.get_round(explorer.session_rounds(session_id)[0].round_id, session_id).direction
    assert stored.method == "tchebycheff" and set(stored.objectives) == {"helpful", "safe"}
    assert page.js_errors == []


def test_ring_is_a_visible_full_circle_when_one_candidate_wins_everywhere(app, page):
    explorer, url = app
    session_id, _ = store_round(explorer, plane=[(0.3, 0.6)], concise=[0.5])
    open_round(page, url, session_id)
    sectors = page.evaluate("""Array.from(document.querySelectorAll('.moex-sector')).map((s) => {
        const b = s.getBBox(); return [s.dataset.index, +s.dataset.lo, +s.dataset.hi, b.width, b.height]; })""")
    assert len(sectors) == 1
    index, lo, hi, width, height = sectors[0]
    assert (index, lo, hi) == ("0", 0.0, 360.0)
    assert width > 100 and height > 100  # drawn as a ring, not an empty arc whose ends coincide
    assert ring_under_arrow(page) == ["0"]


def test_resizing_to_a_phone_and_back_keeps_the_ranges_and_the_points(app, page):
    explorer, url = app
    session_id, _ = store_round(explorer)
    page.set_viewport_size({"width": 1280, "height": 1000})
    open_round(page, url, session_id)
    ranges = ("(() => { const f = document.querySelector('.moex-plot')._fullLayout;"
              " return [...f.xaxis.range, ...f.yaxis.range]; })()")
    before, where = page.evaluate(ranges), points(page)
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(600)  # Plotly's responsive resize runs on a debounced window resize
        assert page.evaluate(ranges) == pytest.approx(before)
    assert before == pytest.approx([-0.08, 1.08, -0.08, 1.08])
    for (x0, y0), (x1, y1) in zip(where, points(page)):
        assert abs(x0 - x1) < 1.5 and abs(y0 - y1) < 1.5  # the points are back where they were
    page.set_viewport_size({"width": 1400, "height": 1100})


def test_a_pinned_weight_is_shown_by_the_arrow_and_moves_the_points_it_ranks(app, page):
    explorer, url = app
    session_id, round_id = store_round(explorer)
    open_round(page, url, session_id)
    page.select_option(".moex-pin-name", label="concise")
    page.fill(".moex-pin-value", "0.8")
    page.click(".moex-pin-button")
    page.wait_for_function("document.querySelector('.moex-pin-label').textContent.includes('concise +0.80')",
                           timeout=TIMEOUT)
    assert page.locator(".moex-pin-chip").inner_text().startswith("concise +0.80")
    for theta in (20, 80, 200):
        turn_arrow_to(page, theta)
        first = data(page, "top")
        along, best = farthest_along_arrow(page, ".moex-ghost")  # where the pin moved each point
        assert along[int(first)] >= best - 0.75, (theta, first, along)
        assert listed_first(page) == first and ring_under_arrow(page) == [first]
    stored = explorer.get_round(round_id, session_id).direction
    w = dict(zip(stored.objectives, stored.weights))
    assert w["concise"] / math.hypot(w["helpful"], w["safe"]) == pytest.approx(0.8)
    page.screenshot(path=str(SCREENSHOTS / "steering_pinned_desktop.png"))
    page.click(".moex-unpin")
    page.wait_for_function("getComputedStyle(document.querySelector('.moex-ghosts')).display === 'none'",
                           timeout=TIMEOUT)
    assert data(page, "pins") == "{}"
    assert page.js_errors == []


def test_each_rounds_front_hypervolume_is_shown_for_the_round_and_in_the_round_list(app, page):
    from mo_explorer.ui import render

    explorer, url = app
    session_id, first = store_round(explorer, plane=[(0.2, 0.3), (0.3, 0.2)], concise=[0.1, 0.2])
    # a second, better round of the same session: its front reaches further on every objective
    store = explorer.store
    better = store.create_round(session_id, [{"role": "user", "content": "Again"}], GenerationParams(n=2), "gen", "rm",
                                NAMES, (False,) * 3 + (True,) * 2, (True,) * 3 + (False,) * 2,
                                np.full(3, 1 / 3, np.float32), np.eye(3, dtype=np.float32))
    store.add_candidates(better, session_id, [Candidate(i, f"better {i}", np.array(r, np.float32), 0.5, 10, 1.0)
                                              for i, r in enumerate([[0.9, 0.5, 0.8, 10, 1.0],
                                                                     [0.5, 0.9, 0.9, 12, 1.0]])])
    store.finish_round(better, session_id)
    volumes = render.front_volumes(explorer.session_rounds(session_id))
    assert volumes[better] > volumes[first] > 0.0
    open_round(page, url, session_id)  # the latest round is shown
    page.wait_for_function("(t) => document.querySelector('.moex-status').innerText.includes(t)",
                           arg=f"Front's hypervolume {volumes[better]:.3f}", timeout=TIMEOUT)
    assert "best of the session's 2 rounds" in page.inner_text(".moex-status")
    page.click("#session-panel .label-wrap")
    page.click("#rounds input")
    options = page.locator("ul[role=listbox] li").all_inner_texts()
    assert any(f"front {volumes[first]:.3f}" in o for o in options)
    assert any(f"front {volumes[better]:.3f}" in o for o in options)


def test_on_a_phone_the_plot_follows_the_prompt_and_a_finger_turns_the_arrow(app, browser):
    explorer, url = app
    session_id, round_id = store_round(explorer)
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                              device_scale_factor=2)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        open_round(page, url, session_id)
        page.screenshot(path=str(SCREENSHOTS / "steering_phone_full.png"), full_page=True)
        prompt = page.locator("#prompt").bounding_box()
        plot = page.locator(".moex-plot").bounding_box()
        assert plot["y"] - (prompt["y"] + prompt["height"]) < 560, (prompt, plot)  # not 1,500 px of scrolling
        handle = page.locator(".moex-arrow-handle").bounding_box()
        assert handle["width"] >= 44 and handle["height"] >= 44  # a finger-sized target
        page.locator(".moex-plot").scroll_into_view_if_needed()
        for theta in (150, 300):
            turn_arrow_to(page, theta, touch=True)
            first = data(page, "top")
            along, best = farthest_along_arrow(page)
            assert along[int(first)] >= best - 0.75 and listed_first(page) == first
        def stored_angle() -> float:
            weights = explorer.get_round(round_id, session_id).direction.weights
            return math.degrees(math.atan2(*weights[::-1])) % 360

        # The last turn is the one stored (saved a moment after the finger stops: wait for it, then compare).
        poll(lambda: abs(stored_angle() - 300) <= 0.5, 20)
        page.screenshot(path=str(SCREENSHOTS / "steering_phone.png"))
        assert errors == []
    finally:
        ctx.close()
