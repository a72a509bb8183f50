"""One thread runs every model call of the process: loading, generating and scoring.

Why one thread: torch's CPU kernels parallelise with OpenMP, and libgomp gives each thread that opens a parallel
region a team of helper threads of its own. Once a second thread has a team, the process holds more OpenMP
threads than cores, libgomp stops spinning between regions, and every one of the thousands of small parallel
regions in a decoding step pays for waking its helpers. Measured on a 2-core AMD EPYC (avx512_bf16), int4
SmolLM2, 8 candidates x 64 tokens, 2 threads: 2.9-3.4 s on the thread that opened the first team, 5.1-6.6 s on
any other thread, on every run (warming that thread up did not help); with OMP_WAIT_POLICY=ACTIVE the other thread
took 6.2-7.1 s, because the first team's idle helper then spins on a core. Before this module the app loaded the
models on the main thread and decoded each round on a fresh thread: the slow case, every round.

So the models are loaded and run here, and every other thread hands this one its model work. Calls made from
this thread itself (a scoring call inside a generation callback) run inline. One thread also means one model
call at a time, which the models need anyway (they are not re-entrant and share two cores).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

THREAD_NAME = "models"

_local = threading.local()


def _mark() -> None:
    _local.is_model_thread = True


_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME, initializer=_mark)


def on_model_thread() -> bool:
    """Whether the caller is the model thread."""
    return getattr(_local, "is_model_thread", False)


def submit(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Queue fn on the model thread (run it now when already there); its future holds the result or the error."""
    if on_model_thread():
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the caller reads it from the future, as from the executor
            future.set_exception(exc)
        return future
    return _executor.submit(fn, *args, **kwargs)


def call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run fn on the model thread and wait for it; its exception is raised here."""
    return submit(fn, *args, **kwargs).result()


def runs_on_model_thread(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorator: every call of fn runs on the model thread."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return call(fn, *args, **kwargs)

    return wrapper
