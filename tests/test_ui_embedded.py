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
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "MO_EXPLORER_DATABASE_PATH": str(tmp_path / "db.sqlite"), "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            pytest.fail("app.py did not serve the page in time")
        assert "mo-explorer" in httpx.get(url).text
        client = Client(url, verbose=False)
        summary = client.predict(prompt="Name a colour.", n=2, temperature=0.7, top_p=0.95, max_new_tokens=8,
                                 seed=0, session_id="", api_name="/generate")
        assert len(summary["candidates"]) == 2 and all(c["text"].strip() for c in summary["candidates"])
        assert {"length_tokens", "gen_seconds"} <= set(summary["objectives"])
        assert summary["generator"] == "embedded:smollm2"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
