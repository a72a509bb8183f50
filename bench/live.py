"""How soon a round shows up in the browser: click -> first words, click -> first point, click -> complete plot, for
plain rounds (Generate) and steered rounds (Write along the arrow), in Chromium on the configured models.

Run: python bench/live.py [--n 8 --max-new-tokens 128 --repeats 3]. Prints the CPU (model, flags, threads, load),
then one JSON line, also appended to bench/live_runs.jsonl. A measurement, not a test: the figures depend on the
machine and on what else runs on it (the browser shares the cores with the models here).

Times are taken inside the page, from the click event to the first animation frame that shows:
- first words: a card of a row being written with text in it;
- first point: a point of the new round on the plot (plain: a scored candidate; steered: a row's partial answer,
  scored at the first block, or a scored candidate);
- complete plot: the status line says Done and the plot holds the new round's n candidates.
frame_gap_ms_p95 / max: the gaps between animation frames while the round ran (what a drag would feel).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cpu_report  # noqa: E402  (bench/bench.py: this folder is on the path)

RUNS = Path(__file__).resolve().parent / "live_runs.jsonl"
PROMPT = "Explain photosynthesis to a seven-year-old."

# Installed before each click: the click time and, at every animation frame, what the page shows.
WATCH = """([button, n]) => {
  const root = document.querySelector('.moex');
  const old = root.dataset.roundId || '';
  const seen = window.__seen = { frames: [] };
  document.querySelector(button).addEventListener('click', () => { seen.t0 = performance.now(); },
    { capture: true, once: true });
  const points = () => document.querySelectorAll('.moex-plot .scatterlayer .trace:nth-child(3) .point').length;
  const tick = () => {
    const now = performance.now();
    if (seen.t0 !== undefined) {
      const t = now - seen.t0;
      seen.frames.push(t);
      const words = [...document.querySelectorAll('.moex-live .moex-card-text')].some((e) => e.textContent.trim());
      const fresh = root.dataset.roundId !== old;
      if (words && seen.words === undefined) seen.words = t;
      if (seen.point === undefined && (document.querySelector('.moex-live-point, .moex-live-done')
          || (fresh && points() > 0))) seen.point = t;
      if (fresh && points() === n && document.querySelector('#status').innerText.includes('Done:')) {
        seen.complete = t;
        return;
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="Candidates per round.")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="Plain and steered rounds each (interleaved).")
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds to wait for one round.")
    parser.add_argument("--screenshot", default=None,
                        help="Save the page here after the last steered round (its points over the faded round "
                             "it was written from), e.g. assets/write_along_embedded.png for the README.")
    return parser


def timed_round(page, button: str, n: int, timeout_s: float) -> dict:
    """Click a button and time the round it starts, in the page (milliseconds from the click)."""
    page.evaluate(WATCH, [button, n])
    page.click(button)
    page.wait_for_function("window.__seen.complete !== undefined", timeout=timeout_s * 1000)
    seen = page.evaluate("window.__seen")
    frames = seen["frames"]
    gaps = sorted(b - a for a, b in zip(frames, frames[1:])) or [0.0]
    return {"words": seen.get("words"), "point": seen.get("point"), "complete": seen["complete"],
            "gap_p95": gaps[int(0.95 * (len(gaps) - 1))], "gap_max": gaps[-1]}


def summary(rounds: list[dict]) -> dict:
    """Per mode: each round's seconds and the median, for every milestone."""
    out = {}
    for key, name in (("words", "first_words"), ("point", "first_point"), ("complete", "complete_plot")):
        values = [r[key] / 1000 for r in rounds if r[key] is not None]
        out[f"click_to_{name}_s"] = [round(v, 2) for v in values]
        out[f"click_to_{name}_median_s"] = round(statistics.median(values), 2) if values else None
    out["frame_gap_ms_p95"] = round(statistics.median(r["gap_p95"] for r in rounds), 1)
    out["frame_gap_ms_max"] = round(max(r["gap_max"] for r in rounds), 1)
    return out


def main(args: argparse.Namespace) -> dict:
    import torch
    from playwright.sync_api import sync_playwright

    from mo_explorer.config import Settings
    from mo_explorer.explorer import Explorer
    from mo_explorer.schema import GenerationParams
    from tests.e2e.conftest import ARGS, CHROMIUM
    from tests.e2e.measure_generate_to_plot import open_page
    from tests.ui_support import served

    tmp = Path(tempfile.mkdtemp(prefix="mo-explorer-live-"))
    settings = Settings.from_env({**os.environ, "MO_EXPLORER_DATABASE_PATH": str(tmp / "db.sqlite")})
    explorer = Explorer.from_settings(settings)
    explorer.run_round("Hello", GenerationParams(n=2, max_new_tokens=8))  # warm-up: first calls are slower
    plain, steered = [], []
    with served(explorer, settings) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = open_page(browser, url, PROMPT, args.n, args.max_new_tokens)
        for seed in range(args.repeats):
            page.locator("#parameters input[type=number]").last.fill(str(seed))  # the seed box
            plain.append(timed_round(page, "#generate", args.n, args.timeout))
            logging.info("plain round %d: %s", seed, plain[-1])
            page.wait_for_function("!document.querySelector('#steer button, button#steer').disabled")
            steered.append(timed_round(page, "#steer", args.n, args.timeout))
            logging.info("steered round %d: %s", seed, steered[-1])
        if args.screenshot:
            page.locator(".moex-plotwrap").screenshot(path=args.screenshot)
        browser.close()
    s = settings.steering
    return {"n": args.n, "max_new_tokens": args.max_new_tokens, "repeats": args.repeats,
            "generator": settings.models.generator, "reward_model": settings.models.reward_model,
            "threads_setting": settings.models.threads, "torch_threads_after": torch.get_num_threads(),
            "steer_block": s.block_tokens, "steer_survivors": s.survivors,
            "plain": summary(plain), "steered": summary(steered)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cli = make_parser().parse_args()
    cpu = cpu_report()
    print(json.dumps({"cpu": cpu, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                      "mo_explorer_threads": os.environ.get("MO_EXPLORER_THREADS")}), flush=True)
    result = {**main(cli), "cpu": cpu, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    result["cpu"]["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result), flush=True)
    with open(RUNS, "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
