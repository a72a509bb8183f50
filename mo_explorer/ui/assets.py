"""Scripts and styles the page loads, all served by this app from installed packages or assets/, never a CDN."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from mo_explorer.config import REPO_ROOT

ASSETS_DIR = REPO_ROOT / "assets"
# The widget's script in named parts, loaded in this order (each adds to window.MoExplorer).
WIDGET_PARTS = ("ranking", "geometry", "overlay", "lists", "live", "controls", "drag", "widget")
WIDGET_JS = tuple(ASSETS_DIR / "pareto" / f"{part}.js" for part in WIDGET_PARTS)
WIDGET_CSS = ASSETS_DIR / "pareto.css"
ARENA_JS = ASSETS_DIR / "arena.js"  # the comparison's keyboard shortcuts


def plotly_js() -> Path:
    """plotly.min.js shipped inside the installed `plotly` Python package."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js not found at {path}; reinstall the plotly package")
    return path


def served_files() -> list[Path]:
    """Every file the page's <head> loads."""
    return [plotly_js(), *WIDGET_JS, ARENA_JS, WIDGET_CSS]


def register_static_files() -> None:
    """Let Gradio serve exactly these files (and nothing else from their folders) at /gradio_api/file=..."""
    gr.set_static_paths(served_files())


def file_url(path: Path) -> str:
    """URL of a served file, relative to the page, with its mtime so a changed file is not read from cache."""
    return f"gradio_api/file={path}?v={int(path.stat().st_mtime)}"


def widget_head() -> str:
    """The <head> tags the Pareto widget needs, loaded before its js_on_load runs."""
    scripts = "".join(f'<script src="{file_url(path)}"></script>\n' for path in (plotly_js(), *WIDGET_JS, ARENA_JS))
    return scripts + f'<link rel="stylesheet" href="{file_url(WIDGET_CSS)}">'
