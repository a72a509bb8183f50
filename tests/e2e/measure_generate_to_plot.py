"""Measure, in Chromium, the time from clicking Generate to the first point and to a complete plot (N x T tokens).

    python -m tests.e2e.measure_generate_to_plot --n 8 --max-new-tokens 128 --repeats 3

Uses the configured models (MO_EXPLORER_* variables; the embedded defaults otherwise) and a temporary database.
Prints one JSON line: the browser's times (click -> first candidate drawn, click -> last candidate drawn), the
core's own time for the same
request (Explorer.run_round) and the difference, which is what the web layer adds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from mo_explorer.config import Settings
from mo_explorer.schema import GenerationParams
from tests.e2e.conftest import ARGS, CHROMIUM
from tests.ui_support import served

PROMPT = "Explain photosynthesis to a seven-year-old."


def set_slider(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def open_page(browser, url: str, prompt: str, n: int, max_new_tokens: int):
    """A new page on the app with the prompt typed and the round's size set (also bench/live.py's)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    page.wait_for_selector(".moex", timeout=120_000)
    page.fill("#prompt textarea", prompt)
    page.click("#parameters .label-wrap")
    set_slider(page, "param-n", n)
    set_slider(page, "param-max-new-tokens", max_new_tokens)
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds to wait for one round.")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from mo_explorer.explorer import Explorer

    tmp = Path(tempfile.mkdtemp(prefix="mo-explorer-measure-"))
    settings = Settings.from_env({**os.environ, "MO_EXPLORER_DATABASE_PATH": str(tmp / "db.sqlite")})
    explorer = Explorer.from_settings(settings)
    params = GenerationParams(n=args.n, max_new_tokens=args.max_new_tokens, temperature=0.8, top_p=0.95)
    explorer.run_round("Hello", GenerationParams(n=2, max_new_tokens=8))  # warm-up: first calls are slower
    core = []
    for seed in range(args.repeats):
        start = time.perf_counter()
        explorer.run_round(PROMPT, GenerationParams(**{**params.to_dict(), "seed": seed}))
        core.append(time.perf_counter() - start)
    browser_times, first_times = [], []
    with served(explorer, settings) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = open_page(browser, url, PROMPT, args.n, args.max_new_tokens)
        for _ in range(args.repeats):
            before = page.evaluate("document.querySelector('.moex').dataset.roundId || ''")
            start = time.perf_counter()
            page.click("#generate")
            page.wait_for_function(
                "(old) => document.querySelector('.moex').dataset.roundId !== old"
                " && document.querySelectorAll('.moex-plot .scatterlayer .trace:nth-child(3) .point').length > 0",
                arg=before, timeout=args.timeout * 1000)
            first_times.append(time.perf_counter() - start)
            page.wait_for_function(
                "([n, old]) => document.querySelector('.moex').dataset.roundId !== old"
                " && document.querySelector('#status').innerText.includes('Done: ' + n)"
                " && document.querySelectorAll('.moex-plot .scatterlayer .trace:nth-child(3) .point').length === n",
                arg=[args.n, before], timeout=args.timeout * 1000)
            browser_times.append(time.perf_counter() - start)
        browser.close()
    print(json.dumps({
        "n": args.n, "max_new_tokens": args.max_new_tokens, "generator": settings.models.generator,
        "reward_model": settings.models.reward_model,
        "browser_click_to_first_point_s": [round(t, 2) for t in first_times],
        "browser_click_to_plot_s": [round(t, 2) for t in browser_times],
        "browser_median_s": round(statistics.median(browser_times), 2),
        "core_run_round_s": [round(t, 2) for t in core], "core_median_s": round(statistics.median(core), 2),
        "web_overhead_median_s": round(statistics.median(browser_times) - statistics.median(core), 2)}))


if __name__ == "__main__":
    main()
