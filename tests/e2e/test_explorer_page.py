"""The page in Chromium on tiny models: generate, drag the arrow with the mouse, reload, read untrusted text."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from mo_explorer import ranking
from mo_explorer.schema import Candidate, GenerationParams
from tests.e2e.conftest import SCREENSHOTS, TIMEOUT

pytestmark = pytest.mark.e2e




def widget(page, key: str) -> str:
    return page.evaluate(f"document.querySelector('.moex').dataset.{key}")


def wait_until(predicate, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def drag_arrow_to(page, theta_deg: float, expected_top: str, steps: int = 24) -> None:
    """Drag the arrow's handle round the circle with real mouse events; the list must rerank before release."""
    origin = page.locator(".moex-origin").bounding_box()
    handle = page.locator(".moex-arrow-handle").bounding_box()
    cx, cy = origin["x"] + origin["width"] / 2, origin["y"] + origin["height"] / 2
    hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    radius, start = math.hypot(hx - cx, hy - cy), math.atan2(cy - hy, hx - cx)
    delta = (math.radians(theta_deg) - start + math.pi) % (2 * math.pi) - math.pi  # the short way round
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.mouse.move(hx, hy)
    page.mouse.down()
    for i in range(1, steps + 1):
        a = start + delta * i / steps
        page.mouse.move(cx + radius * math.cos(a), cy - radius * math.sin(a))
    # still holding the button: the browser has reranked on its own (one animation frame; the generous timeout
    # is for a loaded CI machine, and the request check below is what proves no server round trip happened)
    page.wait_for_function("(top) => document.querySelector('.moex').dataset.top === top", arg=expected_top,
                           timeout=15_000)
    assert not page.evaluate("document.querySelector('.moex-dragging') === null")
    assert not [u for u in requests if "/gradio_api/" in u]  # no server round trip while dragging
    page.mouse.up()


def test_generate_drag_store_and_reload(app, page):
    explorer, url = app
    page.goto(url)
    page.wait_for_function("new URL(location.href).searchParams.get('session')", timeout=TIMEOUT)
    session_id = page.evaluate("new URL(location.href).searchParams.get('session')")
    page.wait_for_selector(".moex", timeout=TIMEOUT)
    page.fill("#prompt textarea", "Write a poem about the sea")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Done')", timeout=TIMEOUT)
    page.wait_for_function("document.querySelectorAll('.moex-by-direction li').length === 4", timeout=TIMEOUT)
    # 4 candidates and the ideal corner's star, drawn first (below them) with no hover or click
    assert page.locator(".moex-plot .scatterlayer .point").count() == 5

    rounds = explorer.session_rounds(session_id)
    assert len(rounds) == 1 and len(rounds[0].candidates) == 4
    top_before = widget(page, "top")
    sectors = page.evaluate("Array.from(document.querySelectorAll('.moex-sector'))"
                            ".map(s => [s.dataset.index, +s.dataset.lo, +s.dataset.hi])")
    others = [s for s in sectors if s[0] != top_before]
    assert others, f"only one candidate wins anywhere: {sectors}"
    index, lo, hi = max(others, key=lambda s: s[2] - s[1])
    drag_arrow_to(page, (lo + hi) / 2, expected_top=index)
    assert widget(page, "top") == index != top_before
    assert [li.get_attribute("data-index") for li in page.locator(".moex-by-direction li").all()][0] == index

    angle = float(widget(page, "angle"))
    assert lo <= angle <= hi
    slider = int(page.locator(".moex-angle").input_value())
    assert abs((slider - angle + 180) % 360 - 180) <= 0.5  # the slider followed the arrow
    stored = wait_until(lambda: explorer.get_round(rounds[0].round_id, session_id).direction)
    w = dict(zip(stored.objectives, stored.unit()))
    assert math.degrees(math.atan2(w["safe"], w["helpful"])) % 360 == pytest.approx(angle, abs=0.01)
    rnd = explorer.get_round(rounds[0].round_id, session_id)
    best = ranking.rank(rnd.reward_matrix(), rnd.maximize, stored, rnd.objectives).best
    assert str(rnd.candidates[best].index) == index  # the server agrees with the browser's winner
    page.wait_for_function("document.querySelector('#direction-status').innerText.includes('Direction saved')",
                           timeout=TIMEOUT)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "explorer_after_drag.png"), full_page=True)

    page.reload()
    page.wait_for_selector(".moex-arrow-handle", timeout=TIMEOUT)
    assert float(widget(page, "angle")) == pytest.approx(angle, abs=0.01) and widget(page, "top") == index
    assert page.evaluate("new URL(location.href).searchParams.get('session')") == session_id

    page.click("#session-panel .label-wrap")
    page.click("#new-session")
    page.wait_for_function(f"new URL(location.href).searchParams.get('session') !== '{session_id}'", timeout=TIMEOUT)
    new_id = page.evaluate("new URL(location.href).searchParams.get('session')")
    assert explorer.session_rounds(new_id) == []
    page.wait_for_selector(".moex.moex-empty", timeout=TIMEOUT)
    assert page.js_errors == []


def test_while_my_round_is_written_the_page_animates_nothing(app, page, monkeypatch):
    """A local run shares its cores with the browser: anything the page animates for the whole round (Gradio pulses
    the status line) is CPU the generator loses. The model is held at its first token so the page can be read."""
    explorer, url = app
    generate, held, release = explorer.generator.generate, threading.Event(), threading.Event()

    def generate_held(messages, params, progress=None, on_finish=None, **live):
        def step(i, total):
            progress(i, total)
            if i == 1:
                held.set()
                release.wait(TIMEOUT / 1000)
        return generate(messages, params, progress=step, on_finish=on_finish, **live)

    monkeypatch.setattr(explorer.generator, "generate", generate_held)
    page.goto(url)
    page.wait_for_selector(".moex", timeout=TIMEOUT)
    page.fill("#prompt textarea", "Write a poem about the sea")
    try:
        page.click("#generate")
        assert held.wait(TIMEOUT / 1000)
        page.wait_for_function("document.querySelector('#status').innerText.includes('Generating')", timeout=TIMEOUT)
        page.wait_for_timeout(500)
        running = page.evaluate("document.getAnimations().filter(a => a.playState === 'running')"
                                ".map(a => (a.animationName || a.transitionProperty) + ' on '"
                                " + (a.effect && a.effect.target ? a.effect.target.className : '?'))")
        assert running == [], f"animating while the model writes: {running}"
        assert page.locator("#status .generating").count() == 1  # Gradio still marks the round as running
    finally:
        release.set()
    page.wait_for_function("document.querySelector('#status').innerText.includes('Done')", timeout=TIMEOUT)
    assert page.js_errors == []


def test_untrusted_text_is_never_html(app, page):
    explorer, url = app
    store = explorer.store
    session_id = store.create_session()
    names = ("helpful", "safe", "concise", "length_tokens", "gen_seconds")
    round_id = store.create_round(session_id, [{"role": "user", "content": "<img src=x onerror=window.pwned=1>"}],
                                  GenerationParams(n=2), "gen", "rm", names, (False,) * 3 + (True,) * 2,
                                  (True,) * 3 + (False,) * 2, np.full(3, 1 / 3, np.float32),
                                  np.eye(3, dtype=np.float32))
    texts = ["<script>window.pwned=2</script>**bold**", "<img src=x onerror=window.pwned=3> and `<b>code</b>`"]
    store.add_candidates(round_id, session_id,
                         [Candidate(i, t, np.array([i, 1 - i, 0.5, 10, 1.0], np.float32), 0.1 * i, 10, 1.0)
                          for i, t in enumerate(texts)])
    store.finish_round(round_id, session_id)
    page.goto(f"{url}?session={session_id}")
    page.wait_for_selector(".moex-by-direction li", timeout=TIMEOUT)
    for i in (0, 1):
        page.locator(f".moex-by-direction li[data-index='{i}']").click()
        page.wait_for_function(f"document.querySelector('#response').innerText.includes('Candidate #{i}')",
                               timeout=TIMEOUT)
        shown = page.inner_text("#response")
        assert texts[i].split("**")[0].split(" and")[0] in shown  # the markup is shown as text
    assert page.locator("#response code").inner_text() == "<b>code</b>"
    # a click on a point opens its response too
    point = page.locator(".moex-plot .scatterlayer .trace").nth(2).locator(".point").nth(0).bounding_box()
    page.mouse.click(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
    page.wait_for_function("document.querySelector('#response').innerText.includes('Candidate #0')", timeout=TIMEOUT)
    assert page.locator("#response img, #response script, .moex img, .moex script").count() == 0
    assert page.evaluate("window.pwned") is None
