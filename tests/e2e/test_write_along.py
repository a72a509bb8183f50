"""Write along the arrow, checked in Chromium on the page a person sees: the arrow pointed, the button pressed, the
new round's points on the plot over the faded old ones, measured along the arrow in screen pixels."""

from __future__ import annotations

import math

import pytest

from mo_explorer.schema import GenerationParams
from tests.e2e.conftest import SCREENSHOTS, TIMEOUT
from tests.e2e.steering_support import arrow, turn_arrow_to

pytestmark = pytest.mark.e2e
README_PICTURE = SCREENSHOTS.parent / "assets" / "write_along.png"

PARAMS = GenerationParams(n=4, max_new_tokens=12, temperature=1.0, top_p=1.0, seed=0)
# rankings every 2 tokens, one survivor: on the tiny models a 12-token round is steered five times
STEERING = {"MO_EXPLORER_STEER_BLOCK": "2", "MO_EXPLORER_STEER_SURVIVORS": "1", "MO_EXPLORER_N": "4",
            "MO_EXPLORER_MAX_NEW_TOKENS": "12"}
WRITTEN = ("(() => { const p = document.querySelector('.moex').moex.state.payload;"
           " return Boolean(p && p.mode === 'steered' && p.status !== 'running' && p.previous); })()")


@pytest.fixture(scope="module")
def app(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    """(explorer, url): the page on the tiny models, steering every 2 tokens."""
    from tests.ui_support import served, tiny_explorer, tiny_settings

    tmp = tmp_path_factory.mktemp("write-along")
    settings = tiny_settings(**STEERING)
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp / "db.sqlite", tmp / "cache", settings)
    with served(explorer, settings) as url:
        yield explorer, url


def marker_pixels(page, name_starts: str) -> list[tuple[float, float]]:
    """Page pixel centres of the markers of the plot's trace whose name starts so."""
    return page.evaluate("""(start) => {
        const plot = document.querySelector('.moex-plot');
        const i = plot.data.findIndex((t) => (t.name || '').startsWith(start));
        return Array.from(plot.querySelectorAll(`.scatterlayer .trace:nth-child(${i + 1}) .point`))
          .map((e) => { const b = e.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; });
    }""", name_starts)


def mean_along_arrow(page, pts: list[tuple[float, float]]) -> float:
    (x1, y1), (x2, y2) = arrow(page)
    length = math.hypot(x2 - x1, y2 - y1)
    return sum((px - x1) * (x2 - x1) / length + (py - y1) * (y2 - y1) / length for px, py in pts) / len(pts)


def open_plain_round(page, explorer, url) -> str:
    rnd = explorer.run_round("Say something kind", PARAMS)
    page.goto(f"{url}?session={rnd.session_id}")
    page.wait_for_selector(".moex-arrow-handle", timeout=TIMEOUT)
    return rnd.session_id


@pytest.mark.parametrize("theta", [45, 135, 225, 315])
def test_i_point_the_arrow_where_no_answer_is_press_write_along_the_arrow_and_the_new_answers_land_further_along_it(
        app, page, theta):
    explorer, url = app
    session_id = open_plain_round(page, explorer, url)
    page.wait_for_function("!document.querySelector('#steer button, button#steer').disabled", timeout=TIMEOUT)
    turn_arrow_to(page, theta)
    page.wait_for_function("document.querySelector('#direction-status').innerText.includes('Direction saved')",
                           timeout=TIMEOUT)
    page.click("#steer")
    page.wait_for_function(WRITTEN, timeout=TIMEOUT)
    page.wait_for_function("document.querySelector('#status').innerText.includes('hypervolume')", timeout=TIMEOUT)
    new, old = marker_pixels(page, "candidates"), marker_pixels(page, "the round it was written from")
    assert len(new) == PARAMS.n and len(old) == PARAMS.n
    # "the new answers land further along the arrow than the old ones", on the plot both share
    assert mean_along_arrow(page, new) > mean_along_arrow(page, old), theta
    rounds = explorer.session_rounds(session_id)
    assert [r.params.mode for r in rounds] == ["plain", "steered"]
    assert rounds[1].prompt == rounds[0].prompt and rounds[1].params.steer == rounds[0].direction
    assert "→" in page.locator("#status").inner_text()  # the front's hypervolume, before → after
    # the line beside the plot speaks of the new round (it named the old round's first before)
    top = page.evaluate("document.querySelector('.moex').dataset.top")
    page.wait_for_function("(top) => document.querySelector('#direction-status').innerText.includes('first: #' + top)",
                           arg=top, timeout=TIMEOUT)
    if theta == 45:
        SCREENSHOTS.mkdir(exist_ok=True)
        page.locator(".moex-plotwrap").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "write_along_the_arrow.png"))
        # the README's picture of a steered round over the faded one, written anew by every run
        page.locator(".moex-plotwrap").screenshot(path=str(README_PICTURE))
    assert page.js_errors == []


def test_the_button_waits_for_a_round_on_the_plot(app, page):
    explorer, url = app
    page.goto(f"{url}?session={explorer.new_session()}")
    page.wait_for_selector("#steer", timeout=TIMEOUT)
    page.wait_for_function("document.querySelector('#status').innerText.includes('New session')", timeout=TIMEOUT)
    assert page.locator("#steer").is_disabled()
