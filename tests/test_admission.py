"""Per-visitor limits, the queue cap and smaller rounds under load, on a clock the test moves by hand."""

from __future__ import annotations

import math

import pytest

from mo_explorer.admission import FLOOR_CANDIDATES, FLOOR_TOKENS, LEARNING_RATE, Admission, LimitError
from mo_explorer.config import VisitorSettings
from mo_explorer.schema import GenerationParams


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(**settings) -> tuple[Admission, Clock]:
    clock = Clock()
    return Admission(VisitorSettings(**settings), clock=clock), clock


def test_rounds_per_minute_per_visitor_refused_saying_when_to_retry():
    gate, clock = admission(rounds_per_minute=2)
    for _ in range(2):
        gate.finish(gate.admit("a", 2, 16))
        clock.now += 10
    with pytest.raises(LimitError, match=r"Too many rounds: .* 2 a minute .* Try again in 40 s") as refused:
        gate.admit("a", 2, 16)
    assert refused.value.kind == "round" and refused.value.retry_s == pytest.approx(40.0)
    gate.finish(gate.admit("b", 2, 16))  # another visitor is not held back
    gate.finish(gate.admit(None, 2, 16))  # nor a call made in this process
    clock.now += 41
    gate.finish(gate.admit("a", 2, 16))  # the first of a's rounds left the window


@pytest.mark.parametrize("kind,setting", [("vote", "votes_per_minute"), ("import", "imports_per_minute")])
def test_votes_and_imports_per_minute(kind, setting):
    gate, clock = admission(**{setting: 3})
    for _ in range(3):
        gate.allow("a", kind)
    with pytest.raises(LimitError, match=f"Too many {kind}s.*Try again in 60 s"):
        gate.allow("a", kind)
    gate.allow("b", kind)
    clock.now += 60
    gate.allow("a", kind)


def test_a_limit_of_zero_means_none():
    gate, _ = admission(votes_per_minute=0, rounds_per_minute=0, max_round_tokens=0)
    for _ in range(100):
        gate.allow("a", "vote")
    gate.finish(gate.admit("a", 32, 512))


def test_candidates_times_tokens_per_round():
    gate, _ = admission(max_round_tokens=1024)
    gate.finish(gate.admit("a", 8, 128))
    with pytest.raises(LimitError, match="8 x 129 = 1032 candidate tokens is more than this demo's 1024") as refused:
        gate.admit("a", 8, 129)
    assert refused.value.kind == "size"


def test_queue_cap_says_how_many_are_ahead_and_how_long():
    gate, _ = admission(max_waiting_rounds=3, drain_seconds=0, rounds_per_minute=0)
    tickets = [gate.admit(f"v{i}", 8, 128) for i in range(3)]
    with pytest.raises(LimitError, match=r"The demo is busy: 3 rounds ahead, about 13 s\. Try again in 13 s") as r:
        gate.admit("v9", 8, 128)
    assert r.value.kind == "queue" and gate.waiting() == 3
    gate.finish(tickets[0])
    gate.finish(gate.admit("v9", 8, 128))


def test_rounds_get_smaller_while_others_queue_so_the_queue_drains_in_time():
    gate, _ = admission(drain_seconds=10, rounds_per_minute=0)  # 8 x 128 first guessed at about 4.1 s
    first, second, third = (gate.admit(f"v{i}", 8, 128) for i in range(3))
    assert (first.n, first.max_new_tokens, first.note()) == (8, 128, "")
    assert (second.n, second.max_new_tokens) == (8, 128) and second.note().startswith("Waiting: 1 round ahead")
    # what is left of the 10 s: the most candidate tokens that fit (more tokens beat more rows at equal work)
    left = 10 - third.wait_s
    assert third.reduced and 0 < left < gate.estimate(8, 128)
    assert gate.estimate(third.n, third.max_new_tokens) <= left
    assert not any(gate.estimate(n, t) <= left and n * t > third.n * third.max_new_tokens
                   for n in range(2, 9) for t in range(16, 129, 16))
    assert third.note() == (f"The demo is busy: {third.n} x {third.max_new_tokens} this time (2 rounds ahead, "
                            f"about {math.ceil(third.wait_s)} s).")
    assert third.applied(GenerationParams(n=8, max_new_tokens=128, seed=4)) == GenerationParams(
        n=third.n, max_new_tokens=third.max_new_tokens, seed=4)
    late = [gate.admit(f"w{i}", 8, 128) for i in range(5)]
    assert all((t.n, t.max_new_tokens) == (FLOOR_CANDIDATES, FLOOR_TOKENS) for t in late)
    small = gate.admit("x", 1, 8)  # never bigger than asked
    assert (small.n, small.max_new_tokens) == (1, 8)


def test_the_estimate_follows_the_rounds_timed():
    gate, clock = admission()
    nominal = gate.estimate(8, 128)  # before any round: slowdown 1
    ticket = gate.admit("a", 8, 128)
    clock.now += 8.0  # twice the first guess
    ticket.completed = True
    gate.finish(ticket)
    assert gate.estimate(8, 128) > nominal  # the machine is slower than the first guess: every size takes longer
    unfinished = gate.admit("a", 8, 128)
    clock.now += 100.0
    gate.finish(unfinished)  # cancelled or failed: not timed
    assert gate.slowdown == pytest.approx(1 + LEARNING_RATE * (8.0 / nominal - 1))
