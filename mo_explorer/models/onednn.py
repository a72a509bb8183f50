"""Dense weights laid out once for oneDNN, torch's CPU matmul library, instead of on every call.

Why: F.linear hands oneDNN the plain (N, K) weight, and oneDNN reorders it into its blocked layout on every call.
For small batches that reorder is most of the call: SmolLM2's LM head (49,152 x 576, bf16) took 5.5 ms for 8 rows,
2.9 ms with the weight laid out once, bit for bit the same logits. The ops are the ones torch.compile's CPU backend
uses for the same purpose (mkldnn._reorder_linear_weight / _linear_pointwise). Measured side by side on 2 AVX512-BF16
cores (README, Speed): int4 rounds with the head laid out 5.08 -> 4.40 s; bf16 7.98 -> 5.68 s and float32 (8 x 64)
8.25 -> 3.58 s with every projection laid out (7.69 -> 4.41 s with the math libraries held to AVX2); MiniLM scoring
8 answers 332 -> 260 ms. The laid-out copy is a second copy of the weight wherever the plain one must stay.
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


def linear(x: torch.Tensor, weight: torch.Tensor, laid_out: torch.Tensor | None,
           bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) for 2-D x, through the laid-out weight when there is one."""
    if laid_out is None:
        return F.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x, laid_out, bias, "none", [None], "")


class PackedLinear(torch.nn.Module):
    """An inference-only nn.Linear that keeps only the laid-out weight (any number of leading dimensions)."""

    def __init__(self, layer: torch.nn.Linear, laid_out: torch.Tensor):
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.laid_out = laid_out
        self.bias = None if layer.bias is None else layer.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        if not flat.is_contiguous():
            flat = flat.contiguous()
        out = torch.ops.mkldnn._linear_pointwise(flat, self.laid_out, self.bias, "none", [None], "")
        return out.reshape(*x.shape[:-1], self.out_features)


def pack_linears(model: torch.nn.Module, rows: int = 1024) -> int:
    """Replace every nn.Linear of a model that nothing else shares by a PackedLinear; returns how many.

    Only for inference on the CPU, and only for a model this caller owns: the plain weights are dropped.
    """
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                laid_out = packed(child.weight, rows)
                if laid_out is not None:
                    setattr(module, name, PackedLinear(child, laid_out))
                    count += 1
    return count
