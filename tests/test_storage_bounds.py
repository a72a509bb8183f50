"""What a public page stores is bounded: idle sessions go, the database has a ceiling, imports a size limit, and
the SQLite file lives on the Space's persistent disk when there is one (and survives a restart there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from mo_explorer.admission import Admission, LimitError
from mo_explorer.config import Settings, StorageSettings, VisitorSettings
from mo_explorer.errors import UserError
from mo_explorer.explorer import Explorer
from mo_explorer.housekeeping import MB, Housekeeper
from mo_explorer.schema import Candidate, Direction, GenerationParams
from mo_explorer.storage.convert import now_utc
from mo_explorer.storage.store import Store
from tests.ui_support import tiny_settings

REPO = Path(__file__).resolve().parent.parent
NAMES = ("helpful", "safe", "length_tokens")


def add_round(store: Store, sid: str, text: str = "an answer") -> str:
    rid = store.create_round(sid, [{"role": "user", "content": "Hi"}], GenerationParams(n=2), "gen", "rm", NAMES,
                             (False, False, True), (True, True, False), np.asarray([0.5, 0.5], np.float32),
                             np.eye(2, dtype=np.float32))
    store.add_candidates(rid, sid, [Candidate(i, f"{text} {i}", np.asarray([i, -i, 3], np.float32), 0.5, 3, 0.1)
                                    for i in range(2)])
    store.finish_round(rid, sid)
    return rid


def test_idle_sessions_are_deleted_and_active_ones_kept(store):
    idle, voted, ranked = store.create_session(), store.create_session(), store.create_session()
    for sid in (idle, voted, ranked):
        add_round(store, sid)
    cutoff = now_utc()
    time.sleep(0.01)
    store.add_vote(voted, store.get_session(voted).rounds[0][0], 0, 1, "a")  # activity after the cutoff
    store.add_direction(store.get_session(ranked).rounds[0][0], ranked, Direction(("helpful",), (1.0,)))
    fresh = store.create_session()
    assert store.delete_idle_sessions(cutoff) == 1
    assert not store.session_exists(idle)
    assert all(store.session_exists(s) for s in (voted, ranked, fresh))
    assert store.delete_idle_sessions(cutoff) == 0


def test_housekeeper_removes_idle_sessions_at_start_and_then_on_its_interval(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    old = store.create_session()
    keeper = Housekeeper(store, StorageSettings(idle_days=1e-7))  # idle after about 9 ms
    time.sleep(0.05)
    keeper.start(interval_s=0.05)
    try:
        assert not store.session_exists(old)  # removed at start, before start() returned
        later = store.create_session()
        deadline = time.monotonic() + 30
        while store.session_exists(later) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not store.session_exists(later)  # removed by the periodic pass
    finally:
        keeper.stop()
    kept = Housekeeper(store, StorageSettings(idle_days=0))
    sid = store.create_session()
    assert kept.remove_idle(now=datetime.now(timezone.utc) + timedelta(days=999)) == 0 and store.session_exists(sid)
    store.close()


def test_a_full_database_refuses_new_rounds_with_a_message(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    used = store.used_bytes()
    keeper = Housekeeper(store, StorageSettings(max_database_mb=(used + 64 * 1024) / MB))
    admission = Admission(VisitorSettings(), storage_full=keeper.storage_full)
    assert keeper.storage_full() is None
    admission.finish(admission.admit("visitor", 2, 16))
    sid = store.create_session()
    for _ in range(12):
        add_round(store, sid, "x" * 8000)
    said = keeper.storage_full()
    assert said and "storage is full" in said
    with pytest.raises(LimitError, match="storage is full") as refused:
        admission.admit("visitor", 2, 16)
    assert refused.value.kind == "storage"
    store.delete_session(sid)  # freed pages are reused, so the data in use drops below the ceiling again
    assert keeper.storage_full() is None
    store.close()


@pytest.fixture
def explorer(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield Explorer(tiny_settings(MO_EXPLORER_MAX_IMPORT_MB="0.002"), None, None, store)  # 2 KB
    store.close()


def session_file(explorer, text: str = "short") -> dict:
    sid = explorer.new_session()
    rid = add_round(explorer.store, sid, text)
    explorer.store.add_direction(rid, sid, Direction(("helpful", "safe"), (1.0, 0.5)))
    return json.loads(explorer.export_session(sid, "json"))


def test_imports_over_the_size_setting_are_refused(explorer):
    small = json.dumps(session_file(explorer)).encode()
    assert len(small) < 0.002 * 2**20
    explorer.import_session(small)
    big = json.dumps(session_file(explorer, "y" * 3000)).encode()
    with pytest.raises(UserError, match="at most 0.002 MB"):
        explorer.import_session(big)


def test_imports_with_an_objective_named_score_or_a_direction_naming_one_twice_are_refused(explorer):
    data = session_file(explorer)
    renamed = json.loads(json.dumps(data))
    renamed["rounds"][0]["objectives"][1] = "score"
    renamed["rounds"][0]["directions"] = []
    with pytest.raises(UserError, match="'score' is the reward model's own score"):
        explorer.import_session(json.dumps(renamed))
    twice = json.loads(json.dumps(data))
    twice["rounds"][0]["directions"][0]["direction"] = {"objectives": ["helpful", "helpful"], "weights": [1.0, 0.5],
                                                        "method": "linear"}
    with pytest.raises(UserError, match=r"names \['helpful'\] more than once"):
        explorer.import_session(json.dumps(twice))
    before = len(explorer.list_sessions())
    explorer.import_session(json.dumps(data))  # the file as exported is accepted
    assert len(explorer.list_sessions()) == before + 1


def test_the_sqlite_file_goes_to_the_spaces_data_dir_when_writable_else_the_cache_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    url, why = StorageSettings(spaces_data_dir=str(data)).location(str(tmp_path / "cache"))
    assert url == f"sqlite:///{data / 'mo_explorer.sqlite'}" and "persistent" in why
    url, why = StorageSettings(spaces_data_dir=str(tmp_path / "absent")).location(str(tmp_path / "cache"))
    assert url == f"sqlite:///{tmp_path / 'cache' / 'mo_explorer.sqlite'}" and "not a writable directory" in why
    a_file = tmp_path / "file"
    a_file.write_text("")
    url, _ = StorageSettings(spaces_data_dir=str(a_file)).location(str(tmp_path / "c"))
    assert url == f"sqlite:///{tmp_path / 'c' / 'mo_explorer.sqlite'}"


def run_cli(args: list[str], data: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MO_EXPLORER_SPACES_DATA_DIR": str(data), "MO_EXPLORER_CACHE_DIR": str(cache)}
    env.pop("MO_EXPLORER_DATABASE_PATH", None)
    env.pop("MO_EXPLORER_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "mo_explorer", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=True)


def test_a_session_started_in_one_run_resumes_in_the_next_on_the_same_data_dir(explorer, tmp_path):
    data, file = tmp_path / "persistent", tmp_path / "session.json"
    data.mkdir()
    file.write_text(json.dumps(session_file(explorer)))
    first = run_cli(["import", str(file)], data, tmp_path / "cache1")
    sid = json.loads(first.stdout)["session_id"]
    assert f"sessions are stored in sqlite:///{data / 'mo_explorer.sqlite'}" in first.stderr
    second = run_cli(["sessions"], data, tmp_path / "cache2")  # a new process, a new (empty) cache
    assert sid in second.stdout
    exported = run_cli(["export", sid, "--format", "json", "--out", str(tmp_path / "again.json")], data,
                       tmp_path / "cache3")
    assert exported.returncode == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert [c["text"] for c in again["rounds"][0]["candidates"]] == ["short 0", "short 1"]


def test_settings_from_the_environment_reach_the_bounds():
    s = Settings.from_env({"MO_EXPLORER_SESSION_IDLE_DAYS": "2", "MO_EXPLORER_MAX_DATABASE_MB": "10",
                           "MO_EXPLORER_SPACES_DATA_DIR": "/elsewhere", "MO_EXPLORER_ROUNDS_PER_MINUTE": "3"})
    assert (s.storage.idle_days, s.storage.max_database_mb, s.storage.spaces_data_dir) == (2.0, 10.0, "/elsewhere")
    assert s.visitors.rounds_per_minute == 3


def test_housekeeping_thread_does_not_outlive_stop(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    keeper = Housekeeper(store, StorageSettings(idle_days=1))
    keeper.start(interval_s=0.01)
    keeper.stop()
    keeper._thread.join(timeout=10)
    assert not keeper._thread.is_alive()
    store.close()
