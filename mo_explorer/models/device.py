"""Devices and dtypes are resolved here, and only here."""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
INT4 = "int4"  # weights in int4 groups, activations in bfloat16 (models.quantize)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bfloat16 instructions (AVX512-BF16 or AMX).

    Without them torch emulates bf16: on a 2-core AVX2 EPYC, 8 x 32 sampled tokens took 16.0 s in bf16 vs
    10.4 s in fp32, so plain AVX2 does not count.
    """
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_weights(name: str, device: torch.device) -> tuple[torch.dtype, bool]:
    """Generator weights: (activation dtype, int4?). 'auto' -> int4 + bf16 on a CPU with native bf16.

    The int4 kernel is fast only with bf16 activations (fp32 activations were ~50x slower), and bf16 is emulated
    (slower than fp32) on AVX2-only CPUs, so those keep float32.
    """
    if name == INT4:
        if device.type != "cpu":
            raise ValueError("int4 generator weights run on the CPU only; use bfloat16 on a GPU")
        return torch.bfloat16, True
    if name == "auto" and device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16, True
    return resolve_dtype(name, device), False


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' -> bfloat16 where the device supports it, else float32; otherwise the named dtype."""
    if name != "auto":
        if name not in _DTYPES:
            raise ValueError(f"unknown dtype {name!r}; use one of auto, {', '.join(_DTYPES)}")
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def configure_threads(threads: int) -> None:
    """Set torch's intra-op thread count when asked (0 keeps torch's default)."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
        log.info("torch uses %d thread(s)", threads)


def idle_cores(load: float | None = None, cores: int | None = None) -> int:
    """Threads for the next model call: the cores not busy elsewhere by the 1-minute load average, at least 1.

    With one of two cores busy, 2 threads decoded 8 x 128 tokens in 10.9-11.5 s where 1 thread took 4.1-4.5 s
    (threads spin waiting for each other); on an idle machine 2 threads win. So a core counts as busy from a load
    of about half a core.
    """
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            return cores
    return max(1, min(cores, int(cores - load + 0.5)))


def threads_for_round(setting: int) -> int:
    """Apply the thread setting for one round (0: idle_cores()) and return the count in force."""
    threads = setting if setting > 0 else idle_cores()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
