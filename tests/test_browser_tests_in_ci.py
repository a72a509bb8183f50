"""In CI (CI=true) a missing Chromium fails the browser tests instead of skipping them; locally they skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("ci", "expected"), [("true", "CI=true but no Chromium"), ("", "1 skipped")])
def test_missing_chromium_fails_in_ci_and_skips_locally(ci, expected):
    env = {**os.environ, "CI": ci, "MO_EXPLORER_CHROMIUM": "/nonexistent/chromium"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/e2e/test_ranking_js.py::test_js_ranking_matches_the_core"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert expected in out.stdout, out.stdout[-2000:]
    assert (out.returncode != 0) == (ci == "true")
