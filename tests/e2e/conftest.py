"""A headless Chromium (Debian's /usr/bin/chromium) shared by the browser tests of one module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MO_EXPLORER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
TIMEOUT = 60_000  # ms; a 2-core CI machine shared with other jobs loads plotly.js slowly


@pytest.fixture(scope="module")
def app(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    """(explorer, url): the page served on the tiny models, with its own database, once per test module."""
    from tests.ui_support import served_tiny

    with served_tiny(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory.mktemp("e2e")) as app:
        yield app


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        # in CI the browser tests are the only check of the page: a missing browser is a failure, not a skip
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def context(browser):
    """One browser context per module, so plotly.js is fetched once and then read from the HTTP cache."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors
    yield pg
    pg.close()
