"""One copy of each causal LM per process: the generator and the reward backbone share SmolLM2's weights.

The shipped head reads SmolLM2 (the generator) for its features and its likelihood objective, so loading it twice
would hold two identical fp32 copies (about 540 MB each). Models are keyed by (resolved path, device, dtype);
callers never modify weights. Feature extractors add forward hooks that only record activations, so sharing is
safe for callers that run one model call at a time, as the Explorer does under its model lock.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

log = logging.getLogger(__name__)

_LOADED: dict[tuple[str, str, str], tuple] = {}
_LOCK = threading.Lock()


def causal_lm(path: str, device: torch.device, dtype: torch.dtype):
    """(tokenizer, model in eval mode) for a local path or Hub id, loaded once per (path, device, dtype)."""
    local = Path(path).expanduser()
    key = (str(local.resolve()) if local.exists() else str(path), str(device), str(dtype))
    with _LOCK:
        if key not in _LOADED:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
            _LOADED[key] = (tokenizer, model)
        else:
            log.info("sharing the already loaded %s (%s, %s)", path, device, dtype)
        return _LOADED[key]

