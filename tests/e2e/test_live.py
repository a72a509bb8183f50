"""A round being written, watched in Chromium at every animation frame: the text grows in the cards before the round
ends, and in a steered round the points move (and the dropped rows' points fade) while it runs.

The tiny model decodes a step in well under a millisecond; here each step is held to 60 ms, about SmolLM2's pace
on two cores, so a round lasts as long as a person would watch it and the page gets its throttled updates."""

from __future__ import annotations

import time

import pytest
import torch

from mo_explorer.schema import GenerationParams
from tests.e2e.conftest import SCREENSHOTS, TIMEOUT

pytestmark = pytest.mark.e2e

STEP_S = 0.06
TOKENS = 32
# rankings every 4 tokens, one survivor: 7 blocks in a steered round of 4 rows, 3 rows dropped at each
SETTINGS = {"MO_EXPLORER_STEER_BLOCK": "4", "MO_EXPLORER_STEER_SURVIVORS": "1", "MO_EXPLORER_N": "4",
            "MO_EXPLORER_MAX_NEW_TOKENS": str(TOKENS), "MO_EXPLORER_MAX_NEW_TOKENS_LIMIT": str(TOKENS)}

# Installed just before the click: what the page shows at every animation frame until the status says Done.
WATCH = """() => {
  const frames = window.__frames = [];
  const t0 = performance.now();
  const tick = () => {
    const status = document.querySelector('#status').innerText;
    const texts = Array.from(document.querySelectorAll('.moex-live .moex-card-text')).map((e) => e.textContent);
    const points = Object.fromEntries(Array.from(document.querySelectorAll('.moex-live-point')).map((e) => {
      const b = e.getBoundingClientRect();
      return [e.dataset.row, [b.x + b.width / 2, b.y + b.height / 2]];
    }));
    const fading = Array.from(document.querySelectorAll('.moex-live-dropped'))
      .map((e) => +getComputedStyle(e).opacity);
    frames.push({ t: performance.now() - t0, done: status.includes('Done:'), texts, points, fading });
    if (!status.includes('Done:')) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


@pytest.fixture(scope="module")
def app(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    """(explorer, url): the page on the tiny models, decoding at about the real model's pace, rows running to the
    end (the turn ends only on a token the tiny model hardly writes)."""
    from tests.ui_support import served, tiny_explorer, tiny_settings

    tmp = tmp_path_factory.mktemp("live")
    settings = tiny_settings(**SETTINGS)
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp / "db.sqlite", tmp / "cache", settings)
    generator = explorer.generator
    generator.eos_ids = torch.tensor([generator.tokenizer("zqxj", add_special_tokens=False)["input_ids"][-1]])
    generate = generator.generate

    def at_pace(messages, params, progress=None, on_finish=None, **live):
        def step(i, total):
            time.sleep(STEP_S)
            if progress is not None:
                progress(i, total)
        return generate(messages, params, progress=step, on_finish=on_finish, **live)

    generator.generate = at_pace
    with served(explorer, settings) as url:
        yield explorer, url


def watch_round(page, button: str, screenshot: str, ready: str) -> list[dict]:
    """Click, take a screenshot once `ready` holds while the round runs (or once it is done, if it never held: the
    assertions then say what was missing), and return the frames until Done."""
    page.evaluate(WATCH)
    page.click(button)
    ended = "(window.__frames.length > 0 && window.__frames[window.__frames.length - 1].done)"
    page.wait_for_function(f"({ready}) || {ended}", timeout=TIMEOUT)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / screenshot))
    page.wait_for_function(ended, timeout=TIMEOUT)
    frames = page.evaluate("window.__frames")
    return frames[:next(i for i, f in enumerate(frames) if f["done"])]  # before the round ended


def test_text_grows_in_the_cards_before_the_round_ends(app, page):
    explorer, url = app
    page.goto(url)
    page.wait_for_selector(".moex", timeout=TIMEOUT)
    page.fill("#prompt textarea", "Write a poem about the sea")
    running = watch_round(page, "#generate", "live_text.png",
                          "[...document.querySelectorAll('.moex-live .moex-card-text')]"
                          ".reduce((n, e) => n + e.textContent.length, 0) > 30")
    written = [sum(len(t) for t in f["texts"]) for f in running]
    grown = [n for before, n in zip(written, written[1:]) if n > before]
    assert written and max(written) > 0, "no text in the cards before the round ended"
    assert len(grown) >= 3, f"the cards' text grew {len(grown)} times before the round ended"
    assert len([t for t in running[-1]["texts"] if t.strip()]) >= 2  # several rows, each in its own card
    assert page.locator(".moex-live").is_hidden()  # done: the round's own ranked cards, nothing half-written
    assert page.js_errors == []


def test_in_a_steered_round_the_points_move_while_it_runs(app, page):
    explorer, url = app
    rnd = explorer.run_round("Say something kind", GenerationParams(n=4, max_new_tokens=8, seed=1))
    page.goto(f"{url}?session={rnd.session_id}")
    page.wait_for_selector(".moex-arrow-handle", timeout=TIMEOUT)
    page.wait_for_function("!document.querySelector('#steer button, button#steer').disabled", timeout=TIMEOUT)
    running = watch_round(page, "#steer", "live_points.png",
                          "document.querySelectorAll('.moex-live-point').length >= 2"
                          " && document.querySelectorAll('.moex-live-dropped').length > 0")
    moved = 0
    for before, after in zip(running, running[1:]):
        moved += any(row in before["points"] and max(abs(a - b) for a, b in zip(before["points"][row], xy)) > 2
                     for row, xy in after["points"].items())
    assert any(f["points"] for f in running), "no point of the rows being written was on the plot"
    assert moved >= 3, f"the rows' points moved in {moved} frames before the round ended"
    fading = [o for f in running for o in f["fading"]]
    assert fading and min(fading) < 0.5 < max(fading)  # the dropped rows' points faded out while it ran
    page.wait_for_function("document.querySelector('.moex').moex.state.payload.mode === 'steered'", timeout=TIMEOUT)
    assert page.locator(".moex-live-point").count() == 0  # done: the new round's own points, on its own scale
    assert page.js_errors == []
