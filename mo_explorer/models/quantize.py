"""Int4 weight-only Linear layers for CPU decoding, through torchao's CPU int4 tensor (tinygemm kernel).

Why int4: decoding a 135M model on 2 cores is bound by reading weights; with bf16 activations, 8 x 128 tokens took
6.1 s against 8.8 s with bf16 weights (same sampler, 2 AVX512-BF16 cores). The embedded SmolLM2 ships as Q4_1
(groups of 32 weights, w = d * q + m), which is exactly tinygemm's asymmetric group format, so re-quantising its
float32 dequantised weights with group size 32 recovers the shipped codes: no quality is lost beyond the GGUF's.

The kernel (aten._weight_int4pack_mm_for_cpu, wrapped by torchao's Int4OpaqueTensor) is fast only with bfloat16
activations; with float32 activations it was ~50x slower, so int4 is used only where the CPU has native bf16
(models.device.cpu_supports_bf16).
"""

from __future__ import annotations

import ctypes
import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

log = logging.getLogger(__name__)

GROUP_SIZE = 32  # the GGUF's Q4_1 block size


def _int4_tensor():
    """torchao's CPU int4 weight tensor, imported quietly: on import torchao warns about its CUDA extensions and
    Triton, which a CPU run never uses."""
    logging.getLogger("torchao").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.prototype.quantization.int4 import Int4OpaqueTensor
    return Int4OpaqueTensor


def int4_weight(weight: torch.Tensor, group_size: int = GROUP_SIZE) -> torch.Tensor:
    """An int4 weight (torchao Int4OpaqueTensor) from a weight (N, K), for bfloat16 activations.

    The groups' scales and zeros are chosen from the weight's own precision (pass float32 when the file has it:
    rounding to bf16 first moved codes by one and cost up to 0.17 nats of mean log-prob), then stored in bf16 as
    the kernel reads them.
    """
    Int4OpaqueTensor = _int4_tensor()
    t = Int4OpaqueTensor.from_hp(weight.detach().float(), [1, group_size])
    return Int4OpaqueTensor(qdata=t.qdata, scale_and_zero=t.scale_and_zero.to(torch.bfloat16),
                            block_size=t.block_size, shape=t.shape, act_pre_scale=None)


def _release_freed_memory() -> None:
    """Give freed heap pages back to the OS (glibc keeps them otherwise, and RSS stays at its peak)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def quantize_int4(model: torch.nn.Module, full_precision: Mapping[str, torch.Tensor] | None = None,
                  group_size: int = GROUP_SIZE) -> int:
    """Replace the weights of the decoder's Linear layers by int4 groups; returns how many.

    model: in bfloat16 on the CPU. full_precision: the checkpoint's weights by parameter name (e.g. a float32
    safetensors file), read one tensor at a time; the model's own weights where it has none.
    The LM head stays in bf16: SmolLM2's embedding table (tied to the head) is not Q4_1 in the GGUF (more than 16
    levels per group), and int4 groups there raised the next-token KL against float32 from 0.0023 to 0.047.
    """
    source = full_precision or {}
    head = model.get_output_embeddings()
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and module is not head and module.in_features % group_size == 0]
    for name, module in targets:
        weight = source[f"{name}.weight"] if f"{name}.weight" in source else module.weight
        module.weight = torch.nn.Parameter(int4_weight(weight, group_size), requires_grad=False)
    _release_freed_memory()
    log.info("int4 weights (groups of %d) in %d Linear layers", group_size, len(targets))
    return len(targets)


class SafetensorsWeights(Mapping):
    """The tensors of a safetensors file by name, each read on demand with plain file reads.

    Not safe_open: it memory-maps the file, and every page read stays in the process's RSS while the map lives
    (reading SmolLM2's float32 Linear weights through it peaked at 1.19 GB, against 0.4 GB read this way).
    """

    _DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with self.path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")  # the format: u64 header length, JSON header, raw data
            header = json.loads(f.read(size))
        header.pop("__metadata__", None)
        self._start = 8 + size
        self._entries = {name: e for name, e in header.items() if e["dtype"] in self._DTYPES}

    def __getitem__(self, name: str) -> torch.Tensor:
        entry = self._entries[name]
        begin, end = entry["data_offsets"]
        with self.path.open("rb") as f:
            f.seek(self._start + begin)
            data = bytearray(f.read(end - begin))
        return torch.frombuffer(data, dtype=self._DTYPES[entry["dtype"]]).reshape(entry["shape"])

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
