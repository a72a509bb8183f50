"""Dense weights laid out once for oneDNN, torch's CPU matmul library, instead of on every call.

Why: F.linear hands oneDNN the plain (N, K) weight, and oneDNN reorders it into its blocked layout on every call.
For small batches that reorder is most of the call: SmolLM2's LM head (49,152 x 576, bf16) took 5.5 ms for 8 rows,
2.9 ms with the weight laid out once, bit for bit the same logits. The ops are the ones torch.compile's CPU backend
uses for the same purpose (mkldnn._reorder_linear_weight / _linear_pointwise). Measured side by side on 2 AVX512-BF16
cores (README, Speed): int4 rounds with the head laid out 5.08 -> 4.40 s; bf16 7.98 -> 5.68 s and float32 (8 x 64)
8.25 -> 3.58 s with every projection laid out (7.69 -> 4.41 s with the math libraries held to AVX2). The laid-out
copy is a second copy of the weight wherever the plain one must stay.

Not for inputs whose row count changes on every call: oneDNN builds a kernel per shape (0.5-0.8 ms each, then
cached). Laying out MiniLM's Linear layers made scoring the same 8 answers again 332 -> 260 ms, but answers of new
lengths, as every round brings, took as long as before (0.23-0.41 s against 0.23-0.30 s), so MiniLM keeps F.linear.
Decoding sees at most `rows` shapes per weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PREPACK = True  # False: plain F.linear everywhere (for side-by-side measurements and tests)


def packed(weight: torch.Tensor, rows: int = 8) -> torch.Tensor | None:
    """weight (N, K) in oneDNN's blocked layout, chosen for about `rows` input rows (a hint: any count works), or
    None where oneDNN cannot take it (then use F.linear)."""
    if not PREPACK or weight.dtype not in (torch.bfloat16, torch.float32) or weight.device.type != "cpu" \
            or not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
    except (RuntimeError, AttributeError):  # a torch built without these ops, or a layout oneDNN refuses
        return None


def linear(x: torch.Tensor, weight: torch.Tensor, laid_out: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight) for 2-D x, through the laid-out weight when there is one."""
    if laid_out is None:
        return F.linear(x, weight)
    return torch.ops.mkldnn._linear_pointwise(x, laid_out, None, "none", [None], "")
