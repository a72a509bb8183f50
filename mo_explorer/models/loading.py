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


def causal_lm(path: str, device: torch.device, dtype: torch.dtype, int4: bool = False,
              int4_source: str | None = None):
    """(tokenizer, model in eval mode) for a local path or Hub id, loaded once per (path, device, dtype, int4).

    An int4 copy (models.quantize) uses eager attention: with bf16 activations on the CPU, the SDPA kernel alone
    took a third of a decoding step. Its groups are chosen from int4_source's safetensors weights when given (a
    float32 copy of the same model), else from the loaded weights.
    """
    local = Path(path).expanduser()
    key = (str(local.resolve()) if local.exists() else str(path), str(device), str(dtype) + ("+int4" if int4 else ""))
    with _LOCK:
        if key not in _LOADED:
            tokenizer = AutoTokenizer.from_pretrained(path)
            extra = {"attn_implementation": "eager"} if int4 else {}
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **extra).to(device).eval()
            if int4:
                from mo_explorer.models.quantize import SafetensorsWeights, quantize_int4

                file = Path(int4_source or path).expanduser() / "model.safetensors"
                quantize_int4(model, SafetensorsWeights(file) if file.is_file() else None)
            _LOADED[key] = (tokenizer, model)
        else:
            log.info("sharing the already loaded %s (%s, %s)", path, device, dtype)
        return _LOADED[key]



def closing_tokens(tokenizer) -> int:
    """How many tokens the chat template adds after an assistant message's content (e.g. <|im_end|>, newline)."""
    def ids(messages, generation_prompt):
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    if tokenizer.chat_template is None:
        return 1
    probe = [{"role": "user", "content": "x"}]
    prompt = ids(probe, True)
    full = ids(probe + [{"role": "assistant", "content": ""}], False)
    return max(1, len(full) - len(prompt)) if full[: len(prompt)] == prompt else 1
