"""Entry point for `python app.py` and Hugging Face Spaces: settings from the environment, the core, the page.

Spaces (and `gradio app.py`) look for a module-level `demo`, so this file builds it at import; the
`mo_explorer` package itself builds nothing at import time.
"""

import logging

# Before the models load: the first run converts SmolLM2 (tens of seconds) and says so in the log.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from mo_explorer.config import Settings  # noqa: E402
from mo_explorer.explorer import Explorer  # noqa: E402
from mo_explorer.ui.app import build_demo, serve  # noqa: E402

settings = Settings.from_env()
explorer = Explorer.from_settings(settings)
explorer.recover_interrupted()  # rounds a crashed or restarted Space left "running"
explorer.housekeeper.start()  # sessions idle for storage.idle_days are removed now, then daily
demo = build_demo(explorer, settings)

if __name__ == "__main__":
    serve(demo, settings)
