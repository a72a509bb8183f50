"""The README's front matter is a valid Hugging Face Spaces configuration for this repository's Docker image."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mo_explorer.config import ServerSettings

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
# The keys the Spaces configuration reference lists (docs/hub/spaces-config-reference); Spaces ignores others.
SPACES_KEYS = {
    "title", "emoji", "colorFrom", "colorTo", "sdk", "python_version", "sdk_version", "suggested_hardware",
    "suggested_storage", "app_file", "app_port", "base_path", "app_build_command", "fullWidth", "header",
    "short_description", "models", "datasets", "tags", "thumbnail", "pinned", "hf_oauth", "hf_oauth_scopes",
    "hf_oauth_expiration_minutes", "hf_oauth_authorized_org", "disable_embedding", "startup_duration_timeout",
    "custom_headers", "preload_from_hub", "license",
}
COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
CPU_HARDWARE = {"cpu-basic", "cpu-upgrade"}


def front_matter() -> dict:
    match = re.match(r"---\n(.*?)\n---\n", README, re.S)
    assert match, "README.md must open with a --- YAML block: Spaces reads its configuration there"
    return yaml.safe_load(match.group(1))


def test_only_keys_spaces_reads_with_valid_values():
    meta = front_matter()
    assert set(meta) <= SPACES_KEYS, set(meta) - SPACES_KEYS
    assert {"title", "sdk", "colorFrom", "colorTo", "emoji"} <= set(meta)
    assert meta["sdk"] == "docker"  # the Dockerfile builds it (CPU torch, models converted at build time)
    assert meta["colorFrom"] in COLOURS and meta["colorTo"] in COLOURS
    assert isinstance(meta["title"], str) and 0 < len(meta["title"]) <= 30
    assert len(meta.get("short_description", "")) <= 60
    assert meta.get("suggested_hardware", "cpu-basic") in CPU_HARDWARE  # what the visitor limits are sized for
    assert isinstance(meta.get("pinned", False), bool)


def test_the_app_port_is_the_port_the_image_serves():
    meta = front_matter()
    dockerfile = (REPO / "Dockerfile").read_text()
    port = meta.get("app_port", 7860)  # Spaces' default
    assert isinstance(port, int)
    assert f"GRADIO_SERVER_PORT={port}" in dockerfile and re.search(rf"^EXPOSE {port}$", dockerfile, re.M)
    assert ServerSettings().port == port
    assert "GRADIO_SERVER_NAME=0.0.0.0" in dockerfile  # reachable from the Space's proxy, not loopback only


def test_the_image_runs_as_the_user_spaces_runs_containers_as():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"useradd .*--uid 1000", dockerfile) and re.search(r"^USER user$", dockerfile, re.M)


def test_the_readme_says_how_to_run_it_on_spaces():
    section = README.split("## Run it on Hugging Face Spaces", 1)[1].split("\n## ", 1)[0]
    for words in ("Duplicate", "cpu-basic", "/data", "MO_EXPLORER_", "Variables", "rounds a minute", "busy"):
        assert words in section, words
