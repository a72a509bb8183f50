"""The Space's image built from the Dockerfile as written and run as Spaces runs it (uid 1000, port 7860, /data):
the page answers, one /generate through gradio_client is served, nothing is converted at run time, and a session
started in one run resumes in the next on the same /data. Prints the build time, the image size and the reply.

Slow (a real build: minutes). Under CI=true a missing engine (buildah, podman, mmdebstrap) fails the test.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests import space_image
from tests.ui_support import free_port

pytestmark = pytest.mark.image
START_S = 300  # the page must answer within this after the container starts (models load from the image's cache)


def _engines_or_skip() -> None:
    missing = space_image.missing_engines()
    if not missing:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {', '.join(missing)} missing (apt-get install buildah podman mmdebstrap)")
    pytest.skip(f"{', '.join(missing)} not installed (apt-get install buildah podman mmdebstrap)")


def _serve(name: str, data: Path, log_path: Path):
    """Start the image's command; returns (process, URL) once the page answers."""
    port = 7860 if _free(7860) else free_port()
    log = open(log_path, "a")
    proc = space_image.start_container(name, data, port, log)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the container exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    space_image.stop_container(proc, name)
    pytest.fail(f"no page on {url} within {START_S} s:\n{log_path.read_text()[-3000:]}")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_space_image_builds_serves_and_keeps_its_sessions_on_data(tmp_path, capsys):
    _engines_or_skip()
    space_image.remove_image()  # one left by a run that died: rebuilt, it would stay behind untagged (3 GB)
    try:
        _build_and_run(tmp_path, capsys)
    finally:
        space_image.remove_image()


def _build_and_run(tmp_path: Path, capsys) -> None:
    from gradio_client import Client

    with open(tmp_path / "build.log", "w") as log:
        space_image.make_base(tmp_path, log)
        seconds = space_image.build(log)
    size = space_image.image_size_mb()
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 1000, 1000)  # a Space's /data belongs to the app's user
    run_log = tmp_path / "run.log"

    proc, url = _serve("mo-explorer-ci-1", data, run_log)
    try:
        first = Client(url, verbose=False).predict(prompt="Name a colour.", n=2, temperature=0.8, top_p=0.95,
                                                   max_new_tokens=16, seed=1, session_id="", api_name="/generate")
    finally:
        space_image.stop_container(proc, "mo-explorer-ci-1")
    said = run_log.read_text()
    with capsys.disabled():
        print(f"\nimage {space_image.IMAGE}: built in {seconds:.0f} s, {size:.0f} MB; /generate from inside it: "
              f"{[(c['index'], c['text'][:60], round(c['score'], 3)) for c in first['candidates']]}")
    assert first["status"] == "complete" and len(first["candidates"]) == 2
    assert "converting" not in said and "writing a bfloat16 copy" not in said  # done at build time
    assert "sessions are stored in sqlite:////data/mo_explorer.sqlite" in said
    assert (data / "mo_explorer.sqlite").is_file()

    proc, url = _serve("mo-explorer-ci-2", data, run_log)  # a second run on the same /data
    try:
        client = Client(url, verbose=False)
        reranked = client.predict(round_id=first["round_id"], weights=[1.0, 0.5], method="linear",
                                  session_id=first["session_id"], api_name="/rerank")
        second = client.predict(prompt="Name a fruit.", n=2, temperature=0.8, top_p=0.95, max_new_tokens=16,
                                seed=2, session_id=first["session_id"], api_name="/generate")
    finally:
        space_image.stop_container(proc, "mo-explorer-ci-2")
    assert [c["text"] for c in reranked["candidates"]] == [c["text"] for c in first["candidates"]]
    assert second["session_id"] == first["session_id"] and second["status"] == "complete"
