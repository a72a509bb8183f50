"""`python app.py` on the embedded defaults serves the page, and a round goes through the page's handlers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from tests.ui_support import free_port

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.model
def test_app_py_serves_the_page_and_the_api_on_embedded_models(tmp_path):
    """A first run, as on a fresh machine (empty model cache): the one-off conversion is logged before the page is
    served, then the page and its API work."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "MO_EXPLORER_DATABASE_PATH": str(tmp_path / "db.sqlite"), "GRADIO_ANALYTICS_ENABLED": "False",
           "MO_EXPLORER_CACHE_DIR": str(tmp_path / "empty-cache"), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "app.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            pytest.fail("app.py did not serve the page in time")
        assert "mo-explorer" in httpx.get(url).text
        text = log.read_text()
        assert "first run: converting" in text and "Running on" in text, text
        assert text.index("first run: converting") < text.index("Running on"), text
        client = Client(url, verbose=False)
        summary = client.predict(prompt="Name a colour.", n=2, temperature=0.7, top_p=0.95, max_new_tokens=8,
                                 seed=0, session_id="", api_name="/generate")
        assert len(summary["candidates"]) == 2 and all(c["text"].strip() for c in summary["candidates"])
        assert {"length_tokens", "gen_seconds"} <= set(summary["objectives"])
        assert summary["generator"] == "embedded:smollm2"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
