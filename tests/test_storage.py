"""Store: sessions, rounds, candidates and directions on a real SQLite file under tmp_path and on a real PostgreSQL
server (tests taking `store` or `store_url` run on both)."""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading

import numpy as np
import pytest

from mo_explorer.errors import NotFoundError, UserError
from mo_explorer.schema import Candidate, Direction, GenerationParams
from mo_explorer.storage import SCHEMA_VERSION, SchemaVersionError, Store
from mo_explorer.storage.store import owner_alive, process_owner
from tests import servers

OBJECTIVES = ("helpfulness", "safety", "length_tokens", "gen_seconds")
MEASURED = (False, False, True, True)
MAXIMIZE = (True, True, True, False)
PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a Pareto front?"}]
# An ORM warning (e.g. a row silently not saved) is a storage bug here.
pytestmark = pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")


def count_rows(store: Store, table: str) -> int:
    """Rows of a table, read with the store's own engine (any backend)."""
    with store._engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar()


def make_round(store: Store, session_id: str, gating=(0.25, 0.75), transform=((1.0, 0.5), (0.0, 2.0))) -> str:
    return store.create_round(session_id, PROMPT, GenerationParams(n=3, temperature=0.7, seed=5), "gen/x", "rm/y",
                              OBJECTIVES, MEASURED, MAXIMIZE, np.asarray(gating, np.float32),
                              np.asarray(transform, np.float32))


def candidate(index: int, rewards=None) -> Candidate:
    rewards = np.asarray(rewards if rewards is not None else [index + 0.5, -index, 10 + index, 0.25], np.float32)
    return Candidate(index=index, text=f"answer {index}", rewards=rewards, score=0.1 * index, n_tokens=10 + index,
                     gen_seconds=0.25)


def test_session_create_list_get(store):
    first, second = store.create_session(), store.create_session()
    assert first != second and len(first) >= 20
    assert store.session_exists(first) and not store.session_exists("nope")
    listed = store.list_sessions()
    assert [s.session_id for s in listed] == [second, first]  # newest first
    assert store.list_sessions(limit=1)[0].session_id == second
    rid = make_round(store, first)
    summary = store.get_session(first)
    assert summary.rounds == ((rid, "What is a Pareto front?"),)
    assert summary.created_at.endswith("+00:00")
    with pytest.raises(NotFoundError, match="unknown session id 'nope'"):
        store.get_session("nope")


def test_round_round_trip(store):
    sid = store.create_session()
    rid = make_round(store, sid)
    store.add_candidates(rid, sid, [candidate(0), candidate(1)])
    store.add_candidates(rid, sid, [candidate(2, [np.nan, 1.0, 2.0, 3.0])])  # a second batch appends
    store.finish_round(rid, sid)
    rnd = store.get_round(rid, sid)
    assert (rnd.round_id, rnd.session_id, rnd.status, rnd.error) == (rid, sid, "complete", None)
    assert rnd.prompt == PROMPT
    assert rnd.params == GenerationParams(n=3, temperature=0.7, seed=5)
    assert (rnd.generator_id, rnd.reward_model_id) == ("gen/x", "rm/y")
    assert (rnd.objectives, rnd.measured, rnd.maximize) == (OBJECTIVES, MEASURED, MAXIMIZE)
    assert rnd.gating.dtype == np.float32 and np.array_equal(rnd.gating, [0.25, 0.75])
    assert rnd.transform.shape == (2, 2) and np.array_equal(rnd.transform, [[1.0, 0.5], [0.0, 2.0]])
    assert [c.index for c in rnd.candidates] == [0, 1, 2]
    for got, want in zip(rnd.candidates[:2], [candidate(0), candidate(1)]):
        assert got.rewards.dtype == np.float32 and np.array_equal(got.rewards, want.rewards)
        assert (got.text, got.score, got.n_tokens, got.gen_seconds) == (want.text, pytest.approx(want.score),
                                                                       want.n_tokens, want.gen_seconds)
    assert np.isnan(rnd.candidates[2].rewards[0])  # NaN survives as JSON null
    assert rnd.reward_matrix().shape == (3, 4)
    assert rnd.direction is None and rnd.created_at.endswith("+00:00")


def test_candidates_visible_while_running(store):
    sid = store.create_session()
    rid = make_round(store, sid)
    assert store.get_round(rid, sid).status == "running" and store.get_round(rid, sid).candidates == ()
    store.add_candidates(rid, sid, [candidate(0)])
    assert [c.index for c in store.get_round(rid, sid).candidates] == [0]


def test_failed_round_keeps_candidates_and_error(store):
    sid = store.create_session()
    rid = make_round(store, sid)
    store.add_candidates(rid, sid, [candidate(0), candidate(1)])
    store.finish_round(rid, sid, status="failed", error="out of memory")
    rnd = store.get_round(rid, sid)
    assert (rnd.status, rnd.error, len(rnd.candidates)) == ("failed", "out of memory", 2)
    with pytest.raises(UserError, match="failed"):
        store.add_candidates(rid, sid, [candidate(2)])
    with pytest.raises(UserError):
        store.finish_round(rid, sid, status="done")


def test_round_validation(store):
    sid = store.create_session()
    with pytest.raises(UserError, match="gating"):
        make_round(store, sid, gating=(1.0, 2.0, 3.0))
    with pytest.raises(UserError, match="transform"):
        make_round(store, sid, transform=np.eye(3))
    with pytest.raises(UserError, match="measured"):
        store.create_round(sid, PROMPT, GenerationParams(), "g", "r", OBJECTIVES, (False,), MAXIMIZE,
                           np.ones(2), np.eye(2))
    with pytest.raises(NotFoundError):
        make_round(store, "missing-session")
    rid = make_round(store, sid)
    with pytest.raises(UserError, match="rewards"):
        store.add_candidates(rid, sid, [candidate(0, [1.0, 2.0])])
    store.add_candidates(rid, sid, [candidate(0)])
    with pytest.raises(UserError, match="already has a candidate 0"):
        store.add_candidates(rid, sid, [candidate(1), candidate(0)])
    assert [c.index for c in store.get_round(rid, sid).candidates] == [0]  # the refused batch left nothing behind


def test_rounds_listed_oldest_first_and_scoped_to_session(store):
    sid, other = store.create_session(), store.create_session()
    rids = [make_round(store, sid) for _ in range(3)]
    foreign = make_round(store, other)
    assert [r.round_id for r in store.list_rounds(sid)] == rids
    assert store.get_round(rids[0], sid).round_id == rids[0]
    with pytest.raises(NotFoundError, match="unknown round"):
        store.get_round(foreign, sid)
    with pytest.raises(NotFoundError):
        store.get_round("no-such-round", sid)
    with pytest.raises(NotFoundError):
        store.list_rounds("no-such-session")


def test_direction_history(store):
    sid = store.create_session()
    rid = make_round(store, sid)
    d1 = Direction(("helpfulness", "safety"), (1.0, 0.0))
    d2 = Direction(("helpfulness", "safety", "gen_seconds"), (0.2, 0.7, 0.1), method="tchebycheff")
    store.add_direction(rid, sid, d1)
    store.add_direction(rid, sid, d2)
    history = store.list_directions(rid, sid)
    assert [d for _, d in history] == [d1, d2]
    assert history[0][0] <= history[1][0] and history[1][0].endswith("+00:00")
    assert store.get_round(rid, sid).direction == d2
    assert store.list_rounds(sid)[0].direction == d2
    with pytest.raises(UserError, match="does not have"):
        store.add_direction(rid, sid, Direction(("verbosity",), (1.0,)))
    with pytest.raises(NotFoundError):
        store.add_direction("nope", sid, d1)


def test_delete_session(store):
    sid, keep = store.create_session(), store.create_session()
    rid = make_round(store, sid)
    store.add_candidates(rid, sid, [candidate(0), candidate(1)])
    store.add_direction(rid, sid, Direction(("safety",), (1.0,)))
    store.add_vote(sid, rid, 0, 1, "a")
    store.delete_session(sid)
    assert not store.session_exists(sid) and store.session_exists(keep)
    with pytest.raises(NotFoundError):
        store.get_round(rid, sid)
    for table in ("mo_rounds", "mo_candidates", "mo_directions", "mo_votes"):  # the cascade left no orphans
        assert count_rows(store, table) == 0


def test_wal_foreign_keys_and_version_on_file(tmp_path):
    path = tmp_path / "wal.sqlite"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # WAL persists in the file
        assert conn.execute("SELECT value FROM mo_meta WHERE key='schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION)
    store = Store(f"sqlite:///{path}")  # reopening an up-to-date database works
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    store.close()


def test_newer_schema_version_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE mo_meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Store(f"sqlite:///{path}")


def test_memory_database_shared_between_threads():
    store = Store("sqlite:///:memory:")
    sid = store.create_session()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(store.session_exists(sid)))
    thread.start()
    thread.join()
    assert seen == [True]
    store.close()


@pytest.mark.parametrize("url_kind", ["file", "file_two_stores", "memory", "postgresql_two_stores"])
def test_concurrent_writes_from_threads(request, tmp_path, url_kind):
    if url_kind.startswith("postgresql"):
        url = servers.create_database(request.getfixturevalue("postgres_base"), "busy_" + secrets.token_hex(6))
    else:
        url = "sqlite:///:memory:" if url_kind == "memory" else f"sqlite:///{tmp_path / 'busy.sqlite'}"
    store = Store(url)
    # Two Store objects on one database stand in for two processes: only the database orders their writes.
    stores = [store, Store(url)] if url_kind.endswith("two_stores") else [store]
    sid = store.create_session()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        store = stores[worker % len(stores)]
        try:
            start.wait()
            for _ in range(3):
                rid = make_round(store, sid)
                store.add_candidates(rid, sid, [candidate(0), candidate(1)])
                store.add_direction(rid, sid, Direction(("safety",), (1.0 + worker,)))
                store.add_vote(sid, rid, 0, 1, "b")
                store.finish_round(rid, sid)
                store.list_rounds(sid)
        except BaseException as exc:  # collected so the main thread can fail the test with it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rounds = store.list_rounds(sid)
    assert len(rounds) == 24 and all(r.status == "complete" and len(r.candidates) == 2 for r in rounds)
    assert len(store.list_votes(sid)) == 24
    for s in stores:
        s.close()


def test_numpy_scalars_accepted_and_stored_as_plain_numbers():
    store = Store("sqlite://")  # the other spelling of an in-memory database
    sid = store.create_session()
    params = GenerationParams(n=np.int64(2), seed=np.int64(9), temperature=np.float32(0.5))
    rid = store.create_round(sid, PROMPT, params, "g", "r", ("a", "b"), (np.bool_(False), np.bool_(True)),
                             (True, True), np.ones(1, np.float32), np.eye(1, dtype=np.float32))
    store.add_candidates(rid, sid, [Candidate(np.int64(0), "t", np.asarray([1, 2], np.float32), np.float32(0.5),
                                              np.int64(4), np.float64(0.1))])
    rnd = store.get_round(rid, sid)
    assert rnd.params == GenerationParams(n=2, seed=9, temperature=0.5) and type(rnd.params.seed) is int
    assert rnd.candidates[0].score == 0.5 and rnd.measured == (False, True)
    store.close()


@pytest.mark.parametrize("attempt", range(8))
def test_stores_opening_one_fresh_file_at_once(tmp_path, attempt):
    # Repeated: the race (two connections switching a fresh file to WAL at once) lost about 1 time in 6.
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    start, opened, errors = threading.Barrier(4), [], []

    def open_store() -> None:
        try:
            start.wait()
            opened.append(Store(url))
        except BaseException as exc:  # collected so the main thread can fail the test with it
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 4
    sid = opened[0].create_session()
    assert all(s.session_exists(sid) for s in opened)
    with sqlite3.connect(tmp_path / "fresh.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM mo_meta").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for s in opened:
        s.close()


def test_running_rounds_left_by_a_crash_are_marked_failed(store_url):
    url = store_url
    me = process_owner()
    crashed_store = Store(url, owner=me.rsplit(":", 1)[0] + ":an-earlier-process")  # same pid, earlier process
    sid = crashed_store.create_session()
    crashed, done = make_round(crashed_store, sid), make_round(crashed_store, sid)
    crashed_store.add_candidates(crashed, sid, [candidate(0)])
    crashed_store.finish_round(done, sid)
    store = Store(url)
    mine = make_round(store, sid)  # this process's own running round is never an orphan
    assert store.fail_orphaned_rounds("interrupted") == 1
    rnd = store.get_round(crashed, sid)
    assert (rnd.status, rnd.error, len(rnd.candidates)) == ("failed", "interrupted", 1)
    assert store.get_round(done, sid).status == "complete" and store.get_round(mine, sid).status == "running"
    assert store.fail_orphaned_rounds("interrupted") == 0


def test_owner_alive_rules():
    me = "here:100:mine"
    now = 1000.0
    assert owner_alive(me, 0.0, now, 60, me)  # mine, however old the stamp
    assert not owner_alive(None, now, now, 60, me)  # schema version 1: nobody owns it
    assert not owner_alive("here:100:before", now, now, 60, me)  # same pid, earlier process
    assert not owner_alive("there:5:x", now - 61, now, 60, me)  # silent too long
    assert owner_alive("there:5:x", now - 59, now, 60, me)  # another host, stamped recently
    assert owner_alive(f"here:{os.getpid()}:x", now, now, 60, me)  # a live process of this host
    assert not owner_alive(f"here:{2**22 + 12345}:x", now, now, 60, me)  # no such process
    assert owner_alive(f"here:{10**30}:x", now, now, 60, me)  # cannot ask: trust the fresh stamp


def test_heartbeat_stamps_only_this_owner_s_running_rounds(store_url):
    url = store_url
    mine, other = Store(url), Store(url, owner="elsewhere:1:x")
    sid = mine.create_session()
    rounds = [make_round(mine, sid), make_round(mine, sid), make_round(other, sid)]
    mine.finish_round(rounds[1], sid)
    assert mine.heartbeat() == 1


def test_cancelled_is_a_finished_status(store):
    sid = store.create_session()
    rid = make_round(store, sid)
    store.add_candidates(rid, sid, [candidate(0)])
    store.finish_round(rid, sid, status="cancelled", error="the client left")
    rnd = store.get_round(rid, sid)
    assert (rnd.status, len(rnd.candidates)) == ("cancelled", 1)
    (copy,) = store.list_rounds(store.import_session(store.export_session(sid)))
    assert copy.status == "cancelled"


def test_version_1_database_is_migrated_and_its_running_rounds_recovered(tmp_path):
    path = tmp_path / "v1.sqlite"
    store = Store(f"sqlite:///{path}")
    sid = store.create_session()
    rid = make_round(store, sid)
    store.add_candidates(rid, sid, [candidate(0)])
    store.close()
    with sqlite3.connect(path) as conn:  # what version 1 wrote: no owner, no heartbeat
        conn.execute("ALTER TABLE mo_rounds DROP COLUMN owner")
        conn.execute("ALTER TABLE mo_rounds DROP COLUMN heartbeat")
        conn.execute("DROP TABLE mo_shares")  # version 3's table
        conn.execute("UPDATE mo_meta SET value='1' WHERE key='schema_version'")
    store = Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM mo_meta WHERE key='schema_version'").fetchone()[0] == "3"
        assert {"owner", "heartbeat"} <= {row[1] for row in conn.execute("PRAGMA table_info(mo_rounds)")}
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='mo_shares'").fetchone()
    assert store.shared_session_id(store.share_token(sid)) == sid  # the new table works after the migration
    assert store.get_round(rid, sid).status == "running"
    assert store.fail_orphaned_rounds("interrupted") == 1  # nobody owned it
    assert store.get_round(rid, sid).status == "failed" and len(store.get_round(rid, sid).candidates) == 1
    store.close()


def test_newer_schema_version_refused_on_any_backend(store_url):
    store = Store(store_url)
    with store._engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE mo_meta SET value='{SCHEMA_VERSION + 1}' WHERE key='schema_version'")
    store.close()
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Store(store_url)


def test_version_1_database_is_migrated_on_any_backend(store_url):
    """The migration's statements are plain SQL that SQLite and PostgreSQL both run."""
    store = Store(store_url)
    sid = store.create_session()
    rid = make_round(store, sid)
    with store._engine.begin() as conn:  # what version 1 wrote: no owner, no heartbeat, no shares table
        conn.exec_driver_sql("ALTER TABLE mo_rounds DROP COLUMN owner")
        conn.exec_driver_sql("ALTER TABLE mo_rounds DROP COLUMN heartbeat")
        conn.exec_driver_sql("DROP TABLE mo_shares")
        conn.exec_driver_sql("UPDATE mo_meta SET value='1' WHERE key='schema_version'")
    store.close()
    store = Store(store_url)
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT value FROM mo_meta WHERE key='schema_version'").scalar() == str(
            SCHEMA_VERSION)
    assert store.shared_session_id(store.share_token(sid)) == sid
    assert store.fail_orphaned_rounds("interrupted") == 1  # nobody owned it
    assert store.get_round(rid, sid).status == "failed"
    store.close()


def test_generated_text_with_a_nul_character_is_stored(store):
    """PostgreSQL text cannot hold NUL (a tiny model sampled one); SQLite keeps it, PostgreSQL stores U+FFFD."""
    sid = store.create_session()
    rid = make_round(store, sid)
    store.add_candidates(rid, sid, [Candidate(0, "a\x00b", np.zeros(4, np.float32), 0.0, 3, 0.1)])
    store.finish_round(rid, sid, status="failed", error="cut\x00off")
    rnd = store.get_round(rid, sid)
    expected = "a\x00b" if store.url.startswith("sqlite") else "a\ufffdb"
    assert rnd.candidates[0].text == expected and rnd.error.startswith("cut")
