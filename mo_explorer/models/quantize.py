"""Int4 weight-only Linear layers for CPU decoding, through torchao's CPU int4 tensor (tinygemm kernel).

Why int4: decoding a 135M model on 2 cores is bound by reading weights; 4-bit weights with bf16 activations cut a
round of 8 x 128 tokens by ~15% over bf16 (issue 12). The embedded SmolLM2 ships as Q4_1 (groups of 32 weights,
w = d * q + m), which is exactly tinygemm's asymmetric group format, so re-quantising its dequantised weights with
group size 32 recovers the shipped codes: no quality is lost beyond what the GGUF already has.

The kernel (aten._weight_int4pack_mm_for_cpu) is fast only with bfloat16 activations; with float32 activations it
was ~50x slower, so int4 is used only where the CPU has native bf16 (models.device.cpu_supports_bf16).
"""

from __future__ import annotations

import logging
import warnings

import torch

log = logging.getLogger(__name__)

GROUP_SIZE = 32  # the GGUF's Q4_1 block size


def _config(group_size: int):
    """torchao's CPU int4 weight-only config (imported lazily: torchao logs CUDA-extension warnings on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torchao").setLevel(logging.ERROR)
        from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig

    return PrototypeInt4WeightOnlyConfig(group_size=group_size, set_inductor_config=False)


def quantize_int4(model: torch.nn.Module, group_size: int = GROUP_SIZE, lm_head: bool = True) -> int:
    """Replace the weights of the decoder's Linear layers (and the LM head) by int4 groups; returns how many.

    The model must be in bfloat16 on the CPU. A tied LM head is untied first: the embedding lookup keeps its bf16
    table, the head's matmul (a fifth of SmolLM2's cost per token) reads the int4 copy.
    """
    from torchao.quantization import quantize_

    if lm_head and getattr(model.config, "tie_word_embeddings", False):
        head = model.get_output_embeddings()
        head.weight = torch.nn.Parameter(head.weight.detach().clone(), requires_grad=False)
        model.config.tie_word_embeddings = False
    count = 0

    def wanted(module: torch.nn.Module, name: str) -> bool:
        nonlocal count
        ok = (isinstance(module, torch.nn.Linear) and module.in_features % group_size == 0
              and (lm_head or module is not model.get_output_embeddings()))
        count += ok
        return ok

    quantize_(model, _config(group_size), filter_fn=wanted)
    log.info("int4 weights (groups of %d) in %d Linear layers", group_size, count)
    return count
