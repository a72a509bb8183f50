"""Import is all-or-nothing: a hostile or broken file is refused whole, with a clear message, and leaves no trace;
a stored session always opens. CSV exports defuse spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from mo_explorer.errors import UserError
from mo_explorer.explorer import Explorer
from mo_explorer.schema import Candidate, Direction, GenerationParams
from mo_explorer.storage.store import Store
from tests.ui_support import tiny_settings

NAMES = ("helpful", "safe", "length_tokens")


@pytest.fixture
def explorer(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield Explorer(tiny_settings(), None, None, store)  # import and export need no models
    store.close()


def stored_session(explorer, texts=("first answer", "second answer")) -> str:
    """A session with one complete round of two candidates, a direction and a vote."""
    store = explorer.store
    sid = store.create_session()
    rid = store.create_round(sid, [{"role": "user", "content": "Hi"}], GenerationParams(n=2, seed=3), "gen", "rm",
                             NAMES, (False, False, True), (True, True, True), np.asarray([0.5, 0.5], np.float32),
                             np.eye(2, dtype=np.float32))
    store.add_candidates(rid, sid, [Candidate(i, t, np.asarray([i, -i, 3 + i], np.float32), 0.5 * i, 3 + i, 0.25)
                                    for i, t in enumerate(texts)])
    store.finish_round(rid, sid)
    store.add_direction(rid, sid, Direction(("helpful",), (1.0,)))
    store.add_vote(sid, rid, 0, 1, "a")
    return sid


def exported(explorer) -> dict:
    return json.loads(explorer.export_session(stored_session(explorer), "json"))


def put(data: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[int(last) if isinstance(target, list) else last] = value
    return data


def as_text(data: dict) -> str:
    return json.dumps(data)  # allow_nan: NaN and Infinity are written as the bare words a hostile file holds


HOSTILE = [
    ("NaN reward", lambda d: put(d, "rounds.0.candidates.0.rewards.1", float("nan")), "NaN"),
    ("inf reward", lambda d: put(d, "rounds.0.candidates.0.rewards.1", float("inf")), "Infinity"),
    ("null reward", lambda d: put(d, "rounds.0.candidates.0.rewards.1", None), r"rewards\[1\]"),
    ("reward beyond float32", lambda d: put(d, "rounds.0.candidates.0.rewards.0", 1e300), r"rewards\[0\]"),
    ("NaN gating", lambda d: put(d, "rounds.0.gating.0", float("nan")), "NaN"),
    ("huge gating", lambda d: put(d, "rounds.0.gating.0", 10**400), r"gating\[0\]"),
    ("null score", lambda d: put(d, "rounds.0.candidates.0.score", None), r"candidates\[0\]\.score"),
    ("seed 10**30", lambda d: put(d, "rounds.0.params.seed", 10**30), r"params\.seed"),
    ("n 2.5", lambda d: put(d, "rounds.0.params.n", 2.5), r"params\.n: must be a whole number"),
    ("n true", lambda d: put(d, "rounds.0.params.n", True), r"params\.n: must be a whole number"),
    ("temperature inf", lambda d: put(d, "rounds.0.params.temperature", 1e999), "Infinity"),
    ("int too large for SQLite", lambda d: put(d, "rounds.0.candidates.0.n_tokens", 2**70), r"n_tokens"),
    ("negative token count", lambda d: put(d, "rounds.0.candidates.0.n_tokens", -4), r"n_tokens"),
    ("negative index", lambda d: put(d, "rounds.0.candidates.0.index", -1), r"candidates\[0\]\.index"),
    ("negative n", lambda d: put(d, "rounds.0.params.n", -3), r"params\.n"),
    ("negative seconds", lambda d: put(d, "rounds.0.candidates.0.gen_seconds", -1.0), r"gen_seconds"),
    ("null into NOT NULL", lambda d: put(d, "rounds.0.candidates.0.gen_seconds", None), r"gen_seconds"),
    ("lone surrogate", lambda d: put(d, "rounds.0.candidates.0.text", "\ud800"), r"text: .*surrogate"),
    ("surrogate in a role", lambda d: put(d, "rounds.0.prompt.0.role", "\udfff"), r"prompt\[0\]\.role"),
    ("text of a number", lambda d: put(d, "rounds.0.candidates.0.text", 5), r"candidates\[0\]\.text"),
    ("prompt as None", lambda d: put(d, "rounds.0.prompt", None), r"rounds\[0\]\.prompt"),
    ("status HTML", lambda d: put(d, "rounds.0.status", "<img src=x onerror=alert(1)>"), r"status"),
    ("version HTML", lambda d: put(d, "version", "<img src=x onerror=alert(1)>"), r"version: Input should be 1"),
    ("too many objectives", lambda d: put(d, "rounds.0.objectives", [f"o{i}" for i in range(65)]), "objectives"),
    ("timestamp", lambda d: put(d, "rounds.0.created_at", "x" * 100), r"created_at"),
    ("direction NaN", lambda d: put(d, "rounds.0.directions.0.direction.weights.0", float("nan")), "NaN"),
    ("vote on a missing candidate", lambda d: put(d, "votes.0.b_index", 9), r"votes\[0\]"),
]


@pytest.mark.parametrize("change, message", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_file_refused_whole(explorer, change, message):
    text = as_text(change(exported(explorer)))
    before = len(explorer.list_sessions())
    with pytest.raises(UserError, match=message) as caught:
        explorer.import_session(text.encode("utf-8", "surrogatepass"))
    assert "<img" not in str(caught.value) and "\n" not in str(caught.value)
    assert len(explorer.list_sessions()) == before  # nothing half-imported


@pytest.mark.parametrize("raw, message", [
    (b"\xff\xfe{\x00", "not UTF-8"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply|not a mo-explorer"),
    ('{"format": "mo-explorer-session", "version": 1, "rounds": [], "votes": [], "x": ' + "[" * 50_000
     + "]" * 50_000 + "}", "nested too deeply"),
    ('{"format": "mo-explorer-session", "version": 1, "rounds": [], "votes": [], "n": 1' + "0" * 5000 + "}",
     "not a session export"),
    ("{not json", "not a JSON session export"),
    ("[1, 2]", "not a mo-explorer session export"),
    (b" " * (5 * 2**20 + 1), "at most 5 MB"),  # limits.max_import_mb, before anything is parsed
])
def test_unreadable_files_refused(explorer, raw, message):
    with pytest.raises(UserError, match=message):
        explorer.import_session(raw)
    assert explorer.list_sessions() == []


def test_a_valid_file_imports_and_opens(explorer):
    data = exported(explorer)
    put(data, "rounds.0.candidates.0.rewards.0", 1e30)  # the largest magnitude allowed still opens
    put(data, "rounds.0.candidates.1.text", "")
    new = explorer.import_session(as_text(data).encode())
    (rnd,) = explorer.session_rounds(new)
    assert rnd.candidates[0].rewards[0] == np.float32(1e30) and np.isfinite(rnd.reward_matrix()).all()
    assert json.loads(explorer.export_session(new, "json"))["rounds"][0]["candidates"][1]["text"] == ""


def test_export_does_not_echo_the_session_id_and_old_files_with_one_still_import(explorer):
    data = exported(explorer)
    assert "session_id" not in data["session"]
    data["session"]["session_id"] = "an-old-export-had-this"
    assert explorer.import_session(as_text(data))


def test_csv_cells_cannot_run_formulas(explorer):
    texts = ("=HYPERLINK(\"http://x\",\"click\")", "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain -1")
    sid = stored_session(explorer, texts[:2])
    store = explorer.store
    rid = store.create_round(sid, [{"role": "user", "content": "=1+1"}], GenerationParams(n=5), "g", "r", NAMES,
                             (False, False, True), (True, True, True), np.ones(2, np.float32), np.eye(2))
    store.add_candidates(rid, sid, [Candidate(i, t, np.asarray([-1.5, 2, 3], np.float32), -0.5, 1, 0.1)
                                    for i, t in enumerate(texts[2:])])
    rows = list(csv.DictReader(io.StringIO(explorer.export_session(sid, "csv"))))
    cells = [row[key] for row in rows for key in ("round_id", "prompt", "text")]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert {row["text"] for row in rows} >= {"'=HYPERLINK(\"http://x\",\"click\")", "'+1+2", "'@SUM(A1)",
                                               "plain -1"}
    assert {row["helpful"] for row in rows} >= {"-1.5"} and {row["score"] for row in rows} >= {"-0.5"}
