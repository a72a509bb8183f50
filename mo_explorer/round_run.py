"""One round's generation and scoring as small named steps: what `Explorer.stream_round` drives (numpy only).

The generation runs as one job (on the model thread, or on its own thread for a served generator); candidates are
scored as they end, those of one decoding step together, before the next step on the same thread: scoring on
another thread would give torch a second OpenMP team and slow every decoding step (see model_thread). Scoring 8
answers together took 0.17 s, one by one 0.30 s. The job reports through a queue that `stream` drains: besides
progress and scored candidates, the live view of the round (the rows' text as it is written, and a steered round's
rankings at each block), which is stored nowhere.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import numpy as np

from mo_explorer.errors import ModelError, UserError
from mo_explorer.schema import Generation, RewardOutput

Scored = tuple[list[Generation], RewardOutput]
# generate(progress, on_finish, report): report(kind, payload) hands up the live view ("writing", "ranked")
Generate = Callable[[Callable[[int, int], None], Callable[[Generation], None], Callable[[str, object], None]], object]
PROGRESS_EVERY_S = 0.1  # progress events are throttled to ~10/s (the last step always goes through)


class RoundCancelled(Exception):
    """Raised inside generation to stop it when the stream that asked for it was closed."""


class ScoringFailed(Exception):
    """Carries the reward model's error out of the generation it interrupted."""


def merge(scored: list[Scored]) -> Scored:
    """Groups of candidates scored apart as one group: their rows stacked under the first output's gating."""
    generations = [g for group, _ in scored for g in group]
    first = scored[0][1]
    if len(scored) == 1:
        return generations, first
    outs = [out for _, out in scored]
    extras = {key: np.concatenate([out.extras[key] for out in outs]) for key in first.extras}
    return generations, RewardOutput(first.objectives, np.concatenate([out.rewards for out in outs]), first.gating,
                                     first.transform, np.concatenate([out.score for out in outs]), extras)


def on_own_thread(fn: Callable[[], None]) -> Future:
    """Run fn on a new daemon thread; its future holds the error, as model_thread.submit's does."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # read by the caller from the future
            future.set_exception(exc)

    threading.Thread(target=run, name="remote-round", daemon=True).start()
    return future


class RoundRun:
    """Generation and scoring of one round: the job's steps (put, score_pending, step, work) and the stream."""

    def __init__(self, generate: Generate, score: Callable[[list[Generation]], RewardOutput],
                 lock: contextlib.AbstractContextManager):
        self.generate = generate  # generate(progress, on_finish, report): the generator's call, guide included
        self.score = score
        self.lock = lock  # held while generating (one local generation at a time)
        self.events: queue.Queue = queue.Queue()
        self.closed = threading.Event()
        self.pending: list[Generation] = []  # candidates that ended in this decoding step, scored together after it

    def put(self, kind: str, payload) -> None:
        """Report to the stream; nobody listening any more stops the generation at this token."""
        if self.closed.is_set():
            raise RoundCancelled("the stream was closed while generating")
        self.events.put((kind, payload))

    def score_pending(self) -> None:
        """Score the candidates that ended since the last step, together, and report them."""
        if not self.pending:
            return
        try:
            out = self.score(self.pending)
        except Exception as exc:  # carried past the generator, which would report it as its own failure
            raise ScoringFailed(exc) from exc
        self.put("scored", (list(self.pending), out))
        self.pending.clear()

    def step(self, i: int, total: int) -> None:
        """After every decoding step: score what ended, then say how far it got."""
        self.score_pending()
        self.put("progress", (i, total))

    def work(self) -> None:
        """The job: generate, scoring as candidates end; a failed generator keeps what ended before it."""
        try:
            with self.lock:
                try:
                    self.generate(self.step, self.pending.append, self.put)
                except ScoringFailed:
                    raise
                except Exception:  # the generator failed: keep what ended before, if it scores
                    with contextlib.suppress(Exception):
                        self.score_pending()
                    raise
                self.score_pending()  # those cut by max_new_tokens end after the last step
        finally:
            self.events.put(None)

    def _take(self) -> tuple[dict, bool]:
        """Everything queued now (waiting for one item): candidates that ended together are stored together,
        every block's ranking is kept, and of the progress and the rows' text only the latest."""
        taken: dict = {"scored": [], "ranked": []}
        item = self.events.get()
        while item is not None:
            kind, payload = item
            if kind in ("scored", "ranked"):
                taken[kind].append(payload)
            else:
                taken[kind] = payload
            if self.events.empty():
                return taken, False
            item = self.events.get()
        return taken, True

    def stream(self, submit: Callable[[Callable[[], None]], Future]) -> Iterator[tuple[str, object]]:
        """Start the job with submit; yield ("progress", (step, total)), ("scored", ([Generation], out)) and the
        live view: ("writing", [Generation] of the unfinished rows) and ("ranked", steering.Ranked), in that order."""
        job = submit(self.work)
        last, ended = 0.0, False
        try:
            while not ended:
                taken, ended = self._take()
                if "writing" in taken:
                    yield "writing", taken["writing"]
                for ranked in taken["ranked"]:
                    yield "ranked", ranked
                if taken["scored"]:
                    yield "scored", merge(taken["scored"])
                progress = taken.get("progress")
                if progress is not None and (time.perf_counter() - last > PROGRESS_EVERY_S
                                             or progress[0] == progress[1]):
                    last = time.perf_counter()
                    yield "progress", progress
        finally:
            self.closed.set()  # a stream closed here (GeneratorExit) frees the models at the next token
        raise_failure(job.exception())  # the job has ended: it put None last


def raise_failure(exc: BaseException | None) -> None:
    """The job's error as the core's: the reward model's, the user's, or the generator's."""
    if isinstance(exc, ScoringFailed):
        raise ModelError(f"The reward model failed while scoring: {exc.__cause__}") from exc.__cause__
    if isinstance(exc, UserError):
        raise exc
    if exc is not None:
        raise ModelError(f"The generator failed: {exc}") from exc
