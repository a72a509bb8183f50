"""Entry point for `python app.py` and Hugging Face Spaces: settings from the environment, the core, the page.

Spaces (and `gradio app.py`) look for a module-level `demo`, so this file builds it at import; the
`mo_explorer` package itself builds nothing at import time.
"""

import logging

from mo_explorer.config import Settings
from mo_explorer.explorer import Explorer
from mo_explorer.ui.app import build_demo, serve

settings = Settings.from_env()
explorer = Explorer.from_settings(settings)
explorer.recover_interrupted()  # rounds a crashed or restarted Space left "running"
demo = build_demo(explorer, settings)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(demo, settings)
