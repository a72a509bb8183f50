"""Who may start what, and how big: per-visitor limits, the bounded queue of rounds, smaller rounds under load.

A public Space is open to everyone at once, and one round keeps both cores busy for seconds. So each visitor (an
address) may start a few rounds, votes and imports a minute; rounds wait in one queue of bounded length; and while
rounds queue, a new round is made smaller so that the queue drains within a set time. Every refusal is a
`LimitError`, a UserError whose message says when to retry. Pure Python: the page and the API share one instance.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mo_explorer.config import VisitorSettings
from mo_explorer.errors import UserError

WINDOW_S = 60.0  # the per-minute limits count events in the last minute (a sliding window)
FLOOR_CANDIDATES = 2  # a round made smaller under load keeps at least 2 candidates (one pair to compare) ...
FLOOR_TOKENS = 32  # ... of at least 32 tokens each (an answer's first sentence or two)
TOKEN_STEP = 16  # smaller token counts are whole multiples of this: "4 x 96", not "4 x 91"
# What a round costs on an idle 2-core CPU (README "Speed"): a fixed part (prefill, scoring, storing, drawing the
# plot), then one decoding step per token, all rows at once. A step's cost grows slowly with its rows (the int4
# matmuls: 2.0 ms for 1 row, 6.4 ms for 8, beside attention and the LM head), so fewer tokens save far more than
# fewer candidates: a step of n rows is taken to cost (n + ROW_OFFSET) / (8 + ROW_OFFSET) of a step of 8. How much
# slower the machine is now (other processes, a smaller CPU) is learned from the rounds timed: `slowdown`.
FIXED_S = 0.4  # 1 x 16 took 0.59 s of which 16 steps ~0.15 s (2026-12-05, bench/load.py's prompt)
ROW_OFFSET = 6
S_PER_STEP = 0.03  # a step of 8 rows: 8 x 128 in about 4 s
LEARNING_RATE = 0.3  # weight of the latest round in the running slowdown


class LimitError(UserError):
    """A request refused by a limit; `retry_s` says when asking again can succeed (None: not by waiting)."""

    def __init__(self, message: str, kind: str, retry_s: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_s = retry_s


@dataclass(eq=False)  # each ticket is its own round: the queue finds it by identity, never by equal fields
class Ticket:
    """A round let in: the size it runs at, and what was ahead of it when it came."""

    visitor: str | None
    n: int
    max_new_tokens: int
    asked: tuple[int, int]  # (n, max_new_tokens) the visitor asked for
    ahead: int  # rounds queued or running when it came
    wait_s: float  # their estimated remaining time
    admitted_at: float
    completed: bool = False

    def applied(self, params):
        """The round's GenerationParams at the size it was let in at."""
        return dataclasses.replace(params, n=self.n, max_new_tokens=self.max_new_tokens)

    @property
    def reduced(self) -> bool:
        """Whether the round runs smaller than asked."""
        return (self.n, self.max_new_tokens) != self.asked

    def note(self) -> str:
        """What the page says before the round starts ('' when nothing is queued and nothing was cut)."""
        if not self.ahead and not self.reduced:
            return ""
        queue = f"{self.ahead} round{'s' if self.ahead != 1 else ''} ahead, about {math.ceil(self.wait_s)} s"
        if self.reduced:
            return f"The demo is busy: {self.n} x {self.max_new_tokens} this time ({queue})."
        return f"Waiting: {queue}."


def _nominal(n: int, max_new_tokens: int) -> float:
    """Seconds a round of n x max_new_tokens takes on an idle machine (see FIXED_S, S_PER_STEP, ROW_OFFSET)."""
    return FIXED_S + S_PER_STEP * max_new_tokens * (n + ROW_OFFSET) / (8 + ROW_OFFSET)


def _seconds(value: float) -> str:
    return f"{max(1, math.ceil(value))} s"


class Admission:
    """Per-visitor rate limits, the queue cap, the storage check and the size of each round under load."""

    def __init__(self, settings: VisitorSettings, storage_full: Callable[[], str | None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._storage_full = storage_full
        self._clock = clock
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], collections.deque] = {}
        self._queue: list[Ticket] = []  # rounds let in and not finished, oldest first
        self._last_done = -math.inf  # when the last round finished: the next one's service started no earlier
        self.slowdown = 1.0  # measured / nominal seconds of the rounds timed so far (a running average)

    # ----- per-visitor rates --------------------------------------------------------------------------------
    def allow(self, visitor: str | None, kind: str) -> None:
        """Count one `kind` ('vote', 'import' or 'round') for the visitor, or raise LimitError saying when to retry.

        A call with no visitor (the command line, in-process callers) is not counted.
        """
        with self._lock:
            self._count(visitor, kind)

    def _count(self, visitor: str | None, kind: str) -> None:
        limit = {"round": self.settings.rounds_per_minute, "vote": self.settings.votes_per_minute,
                 "import": self.settings.imports_per_minute}[kind]
        if visitor is None or limit <= 0:
            return
        now = self._clock()
        events = self._events.setdefault((visitor, kind), collections.deque())
        while events and now - events[0] >= WINDOW_S:
            events.popleft()
        if len(events) >= limit:
            retry = WINDOW_S - (now - events[0])
            raise LimitError(f"Too many {kind}s: this demo allows {limit} a minute for each visitor. "
                             f"Try again in {_seconds(retry)}.", kind, retry)
        events.append(now)
        if len(self._events) > 10_000:  # forget visitors idle for a minute, so the table stays small
            self._events = {key: q for key, q in self._events.items() if q and now - q[-1] < WINDOW_S}

    # ----- rounds -------------------------------------------------------------------------------------------
    def estimate(self, n: int, max_new_tokens: int) -> float:
        """Seconds a round of n x max_new_tokens should take alone, from the rounds timed so far."""
        return self.slowdown * _nominal(n, max_new_tokens)

    def _remaining(self, now: float) -> float:
        """Estimated seconds until every round in the queue is done (the oldest one may be part-way)."""
        total = sum(self.estimate(t.n, t.max_new_tokens) for t in self._queue)
        if self._queue:
            total -= now - max(self._queue[0].admitted_at, self._last_done)
        return max(0.0, total)

    def _size(self, n: int, tokens: int, wait_s: float) -> tuple[int, int]:
        """The round's size: as asked when it fits in what is left of drain_seconds, else the biggest smaller one
        (most candidate tokens, then most tokens each) that fits, never under FLOOR_CANDIDATES x FLOOR_TOKENS."""
        drain = self.settings.drain_seconds
        budget = drain - wait_s
        if drain <= 0 or not self._queue or self.estimate(n, tokens) <= budget:
            return n, tokens
        floor_n, floor_tokens = min(n, FLOOR_CANDIDATES), min(tokens, FLOOR_TOKENS)
        sizes = [(c, t) for c in range(floor_n, n + 1)
                 for t in sorted({floor_tokens, *range(TOKEN_STEP, tokens + 1, TOKEN_STEP)})
                 if t >= floor_tokens and self.estimate(c, t) <= budget]
        return max(sizes, key=lambda s: (s[0] * s[1], s[1]), default=(floor_n, floor_tokens))

    def admit(self, visitor: str | None, n: int, max_new_tokens: int) -> Ticket:
        """Let a round in (queue it), at its size under the current load; LimitError when it may not start."""
        s = self.settings
        if s.max_round_tokens > 0 and n * max_new_tokens > s.max_round_tokens:
            raise LimitError(f"{n} x {max_new_tokens} = {n * max_new_tokens} candidate tokens is more than this "
                             f"demo's {s.max_round_tokens} per round: ask for fewer candidates or tokens.", "size")
        full = self._storage_full()
        if full:
            raise LimitError(full, "storage")
        with self._lock:
            now = self._clock()
            wait_s = self._remaining(now)
            ahead = len(self._queue)
            if ahead >= s.max_waiting_rounds:
                raise LimitError(f"The demo is busy: {ahead} rounds ahead, about {_seconds(wait_s)}. "
                                 f"Try again in {_seconds(wait_s)}.", "queue", wait_s)
            self._count(visitor, "round")
            small_n, small_tokens = self._size(n, max_new_tokens, wait_s)
            ticket = Ticket(visitor, small_n, small_tokens, (n, max_new_tokens), ahead, wait_s, now)
            self._queue.append(ticket)
        return ticket

    def finish(self, ticket: Ticket) -> None:
        """A round left the queue; a completed one corrects the machine's slowdown."""
        with self._lock:
            now = self._clock()
            running = bool(self._queue) and self._queue[0] is ticket  # rounds run one after another, oldest first
            if ticket in self._queue:
                self._queue.remove(ticket)
            if not running:  # it left while waiting (its visitor went away): nothing was timed
                return
            started = max(ticket.admitted_at, self._last_done)
            self._last_done = now
            if ticket.completed and now > started:
                ratio = (now - started) / _nominal(ticket.n, ticket.max_new_tokens)
                self.slowdown += LEARNING_RATE * (ratio - self.slowdown)

    @contextlib.contextmanager
    def round(self, visitor: str | None, n: int, max_new_tokens: int) -> Iterator[Ticket]:
        """admit() ... finish(): the body runs the round and sets ticket.completed when it ran to the end."""
        ticket = self.admit(visitor, n, max_new_tokens)
        try:
            yield ticket
        finally:
            self.finish(ticket)

    def waiting(self) -> int:
        """Rounds queued or running now."""
        with self._lock:
            return len(self._queue)
