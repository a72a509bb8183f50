"""Store: votes, their denormalised records, and session export/import, on a real SQLite file under tmp_path and on
a real PostgreSQL server."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from mo_explorer.errors import NotFoundError, UserError
from mo_explorer.schema import Candidate, Direction, GenerationParams, Vote
from mo_explorer.storage import EXPORT_FORMAT, Store

OBJECTIVES = ("helpfulness", "safety", "length_tokens")
PROMPT = [{"role": "user", "content": "Name a prime."}]
DIRECTION = Direction(("helpfulness", "safety"), (0.6, 0.8))
# An ORM warning (e.g. a row silently not saved) is a storage bug here.
pytestmark = pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")


def make_round(store: Store, session_id: str, n: int = 3) -> str:
    rid = store.create_round(session_id, PROMPT, GenerationParams(n=n, seed=1), "gen", "rm", OBJECTIVES,
                             (False, False, True), (True, True, True), np.asarray([0.5, 0.5], np.float32),
                             np.eye(2, dtype=np.float32))
    store.add_candidates(rid, session_id, [Candidate(i, f"text {i}", np.asarray([i, -i, 3 + i], np.float32),
                                                     0.5 * i, 3 + i, 0.125) for i in range(n)])
    store.finish_round(rid, session_id)
    return rid


def test_vote_round_trip_and_record(store):
    sid = store.create_session()
    rid = make_round(store, sid)
    vote = store.add_vote(sid, rid, 2, 0, "a", DIRECTION)
    assert isinstance(vote, Vote) and (vote.session_id, vote.round_id, vote.a_index, vote.b_index) == (sid, rid, 2, 0)
    assert vote.outcome == "a" and vote.direction == DIRECTION and vote.created_at.endswith("+00:00")
    assert store.list_votes(sid) == [vote]
    record = store.vote_records(sid)[0]
    assert json.loads(json.dumps(record)) == record  # JSON-friendly as is
    assert record["vote_id"] == vote.vote_id and record["round_id"] == rid and record["chosen"] == "a"
    assert record["prompt"] == PROMPT and record["objectives"] == list(OBJECTIVES)
    assert record["a"] == {"index": 2, "text": "text 2", "rewards": [2.0, -2.0, 5.0]}
    assert record["b"] == {"index": 0, "text": "text 0", "rewards": [0.0, 0.0, 3.0]}
    assert record["direction"] == {"objectives": ["helpfulness", "safety"], "weights": [0.6, 0.8], "method": "linear"}
    assert record["params"] == GenerationParams(n=3, seed=1).to_dict()
    assert (record["generator_id"], record["reward_model_id"]) == ("gen", "rm")


def test_votes_ordered_and_isolated_between_sessions(store):
    sid, other = store.create_session(), store.create_session()
    rid, other_rid = make_round(store, sid), make_round(store, other)
    first = store.add_vote(sid, rid, 0, 1, "tie")
    second = store.add_vote(sid, rid, 1, 2, "both_bad")
    store.add_vote(other, other_rid, 0, 1, "b")
    assert [v.vote_id for v in store.list_votes(sid)] == [first.vote_id, second.vote_id]
    assert [r["chosen"] for r in store.vote_records(sid)] == [None, None]
    assert [v.outcome for v in store.list_votes(other)] == ["b"]
    with pytest.raises(NotFoundError, match="unknown round"):
        store.add_vote(sid, other_rid, 0, 1, "a")  # a round of another session
    assert len(store.list_votes(sid)) == 2


@pytest.mark.parametrize("a, b, outcome, error", [
    (0, 0, "a", "two different candidates"),
    (0, 7, "a", "has no candidate 7"),
    (-1, 0, "b", "has no candidate -1"),
    (0, 1, "maybe", "unknown vote outcome"),
])
def test_vote_refusals(store, a, b, outcome, error):
    sid = store.create_session()
    rid = make_round(store, sid)
    with pytest.raises(UserError, match=error):
        store.add_vote(sid, rid, a, b, outcome)
    assert store.list_votes(sid) == []


def test_vote_unknown_ids(store):
    sid = store.create_session()
    rid = make_round(store, sid)
    with pytest.raises(NotFoundError, match="unknown session id"):
        store.add_vote("nope", rid, 0, 1, "a")
    with pytest.raises(NotFoundError, match="unknown round"):
        store.add_vote(sid, "nope", 0, 1, "a")
    for read in (store.list_votes, store.vote_records, store.export_session):
        with pytest.raises(NotFoundError):
            read("nope")
    with pytest.raises(NotFoundError):
        store.list_directions("nope", sid)


def _without_ids(exported: dict) -> dict:
    """An export with the ids and export time that an import replaces taken out; round ids become positions."""
    data = copy.deepcopy(exported)
    positions = {r["round_id"]: i for i, r in enumerate(data["rounds"])}
    del data["exported_at"]
    del data["session"]
    for r in data["rounds"]:
        del r["round_id"]
    for v in data["votes"]:
        del v["vote_id"]
        v["round_id"] = positions[v["round_id"]]
    return data


def _full_session(store: Store) -> str:
    sid = store.create_session()
    first, second = make_round(store, sid), make_round(store, sid, n=2)
    store.add_direction(first, sid, DIRECTION)
    store.add_direction(first, sid, Direction(("safety", "length_tokens"), (1.0, -0.5), method="tchebycheff"))
    store.add_vote(sid, first, 0, 2, "b", DIRECTION)
    store.add_vote(sid, second, 1, 0, "tie")
    failed = make_round(store, sid)
    store.finish_round(failed, sid, status="failed", error="generator crashed")
    return sid


def test_export_import_round_trip(store):
    sid = _full_session(store)
    exported = store.export_session(sid)
    assert exported["format"] == EXPORT_FORMAT and len(exported["rounds"]) == 3 and len(exported["votes"]) == 2
    text = json.dumps(exported)  # what the user downloads
    new_sid = store.import_session(json.loads(text))
    assert new_sid != sid
    again = store.export_session(new_sid)
    assert _without_ids(again) == _without_ids(exported)
    old_ids = {r["round_id"] for r in exported["rounds"]}
    assert not old_ids & {r["round_id"] for r in again["rounds"]}  # fresh round ids
    old_rounds, new_rounds = store.list_rounds(sid), store.list_rounds(new_sid)
    for old, new in zip(old_rounds, new_rounds):
        assert np.array_equal(old.reward_matrix(), new.reward_matrix())
        assert np.array_equal(old.gating, new.gating) and np.array_equal(old.transform, new.transform)
        assert (old.direction, old.status, old.error) == (new.direction, new.status, new.error)
    old_records, new_records = store.vote_records(sid), store.vote_records(new_sid)
    for old, new in zip(old_records, new_records):
        for key in ("outcome", "a", "b", "prompt", "direction", "params", "created_at"):
            assert old[key] == new[key]
    assert store.list_votes(sid)[0].vote_id not in {v.vote_id for v in store.list_votes(new_sid)}


def test_import_of_running_round_marks_it_failed(store):
    sid = store.create_session()
    rid = store.create_round(sid, PROMPT, GenerationParams(), "g", "r", ("x",), (False,), (True,), np.ones(1),
                             np.eye(1))
    (rnd,) = store.list_rounds(store.import_session(store.export_session(sid)))
    assert rnd.status == "failed" and "still running" in rnd.error
    assert store.get_round(rid, sid).status == "running"


def _break(path: str, value):
    """Set (or with value=KeyError, delete) one nested entry of a valid export."""
    def apply(data: dict) -> None:
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is KeyError:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return apply


@pytest.mark.parametrize("change, message", [
    (_break("format", "something-else"), "not a mo-explorer session file"),
    (_break("version", 99), "unsupported session file version"),
    (_break("rounds", KeyError), "missing 'rounds'"),
    (_break("rounds.0.gating", [1.0]), r"rounds\[0\].*gating"),
    (_break("rounds.0.transform", [[1.0, "x"], [0.0, 1.0]]), r"rounds\[0\].*transform"),
    (_break("rounds.0.candidates.1.rewards", [1.0, 2.0]), r"rounds\[0\]\.candidates\[1\]\.rewards"),
    (_break("rounds.0.candidates.1.index", 0), r"rounds\[0\]\.candidates: indices must be unique"),
    (_break("rounds.0.prompt", "hello"), r"rounds\[0\]\.prompt"),
    (_break("rounds.0.params", {"n": 2, "beams": 3}), r"rounds\[0\]\.params"),
    (_break("rounds.0.status", "paused"), r"rounds\[0\]\.status"),
    (_break("rounds.0.created_at", "yesterday"), r"rounds\[0\]\.created_at"),
    (_break("rounds.0.directions.0.direction", {"objectives": ["nope"], "weights": [1.0]}),
     r"rounds\[0\]\.directions\[0\]\.direction"),
    (_break("votes.0.round_id", "unknown"), r"votes\[0\]\.round_id"),
    (_break("votes.0.b_index", 0), r"votes\[0\]"),
    (_break("votes.1.outcome", "a-ish"), r"votes\[1\]\.outcome"),
])
def test_malformed_import_rejected(store, change, message):
    sid = _full_session(store)
    data = store.export_session(sid)
    change(data)
    before = len(store.list_sessions())
    with pytest.raises(UserError, match=message):
        store.import_session(data)
    assert len(store.list_sessions()) == before  # nothing half-imported


def test_import_rejects_non_object(store):
    with pytest.raises(UserError, match="JSON object"):
        store.import_session([1, 2, 3])
