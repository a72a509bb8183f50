"""Devices and dtypes are resolved here, and only here."""

from __future__ import annotations

import logging
import os
import time

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
    if name == "auto" and device.type == "cpu" and cpu_supports_bf16() and _has_torchao():
        return torch.bfloat16, True
    return resolve_dtype(name, device), False


def _has_torchao() -> bool:
    """torchao is installed (requirements.txt installs it on x86_64 only, where its wheel exists)."""
    import importlib.util

    return importlib.util.find_spec("torchao") is not None


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
    """Threads for the next model call: the cores that other work leaves idle, at least 1.

    load: how many cores other processes keep busy (OtherLoad), else the 1-minute load average. With one of two
    cores busy, 2 threads decoded 8 x 128 tokens in 10.9-11.5 s where 1 thread took 4.1-4.5 s (threads spin
    waiting for each other); on an idle machine 2 threads win. So a core counts as busy from about half a core.
    """
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            return cores
    return max(1, min(cores, int(cores - load + 0.5)))


class OtherLoad:
    """How many cores other processes kept busy since the last look: the machine's busy time (/proc/stat) minus
    this process's own CPU time.

    Not the load average: it counts this process's last round too, so after one busy round the next one would
    have been given fewer threads on an otherwise idle machine.
    """

    def __init__(self):
        self._last: tuple[float, float, float] | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        """(monotonic seconds, all cores' busy seconds since boot, this process's CPU seconds)."""
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        ticks = os.sysconf("SC_CLK_TCK")
        own = os.times()
        return time.monotonic(), (user + nice + system + irq + softirq + steal) / ticks, own.user + own.system

    def cores_busy(self) -> float | None:
        """Cores busy with other work since the previous call (over 0.1 s on the first); None where unknown."""
        try:
            if self._last is None:
                self._last = self._sample()
                time.sleep(0.1)
            now = self._sample()
        except (OSError, ValueError):
            return None
        last, self._last = self._last, now
        elapsed = now[0] - last[0]
        if elapsed <= 0:
            return None
        return max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / elapsed)


def threads_for_round(setting: int, probe: OtherLoad | None = None) -> int:
    """Apply the thread setting for one round (0: idle_cores() by the probe) and return the count in force."""
    threads = setting if setting > 0 else idle_cores(probe.cores_busy() if probe is not None else None)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
