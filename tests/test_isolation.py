"""Ownership: knowing another session's round id (every export lists them) grants nothing, on any path.

Every read and write that addresses a round is tried from session B on a round of session A, and with a round
id that exists nowhere: both are refused with the same words, and session A is left exactly as it was.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from mo_explorer.cli import main
from mo_explorer.errors import NotFoundError, UserError
from mo_explorer.schema import Candidate, Direction, GenerationParams
from mo_explorer.storage.store import ROUND_REFUSAL
from mo_explorer.ui.api import Api
from tests.ui_support import tiny_page

PARAMS = GenerationParams(n=3, max_new_tokens=3, temperature=1.0, top_p=1.0, seed=2)
NOWHERE = "AAAAAAAAAAAAAAAAAAAAAA"  # a well-formed round id that no session has


@pytest.fixture(scope="module")
def page(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    page = tiny_page(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory.mktemp("isolation"))
    explorer = page.explorer
    owner = explorer.run_round("Whose round is this?", PARAMS)
    intruder = explorer.run_round("Another session", PARAMS)
    return SimpleNamespace(explorer=explorer, h=page.h, ch=page.ch, c=page.c, api=Api(explorer), owner=owner,
                           intruder=intruder.session_id)


def _snapshot(explorer, rnd) -> dict:
    """Everything a probe could change in the owner's session: rounds, candidates, directions, votes, status."""
    exported = explorer.store.export_session(rnd.session_id)
    del exported["exported_at"]
    return exported


def _probes(p, round_id: str, session_id: str) -> dict:
    """Every path that addresses a round, called from `session_id` on `round_id`."""
    e, h, ch, store = p.explorer, p.h, p.ch, p.explorer.store
    direction = Direction(("helpful",), (-1.0,))
    event = gr.EventData(None, {"round_id": round_id, "objectives": ["helpful"], "weights": [-1.0],
                                "method": "linear", "index": 0})
    candidate = Candidate(index=7, text="injected", rewards=p.owner.candidates[0].rewards, score=0.0, n_tokens=1,
                          gen_seconds=0.0)
    return {
        "store.get_round": lambda: store.get_round(round_id, session_id),
        "store.add_candidates": lambda: store.add_candidates(round_id, session_id, [candidate]),
        "store.finish_round": lambda: store.finish_round(round_id, session_id, "failed", "hijacked"),
        "store.add_direction": lambda: store.add_direction(round_id, session_id, direction),
        "store.list_directions": lambda: store.list_directions(round_id, session_id),
        "store.add_vote": lambda: store.add_vote(session_id, round_id, 0, 1, "a"),
        "explorer.get_round": lambda: e.get_round(round_id, session_id),
        "explorer.rerank": lambda: e.rerank(round_id, direction, session_id),
        "explorer.vote": lambda: e.vote(session_id, round_id, 0, 1, "a"),
        "api /rerank weights": lambda: p.api.rerank(round_id, [-1.0], "linear", session_id),
        "api /rerank angle": lambda: p.api.rerank(round_id, None, "linear", session_id, None, 45.0),
        "api /rerank no session": lambda: p.api.rerank(round_id, [-1.0], "linear", ""),
        "page store_direction (drag)": lambda: h.store_direction(event, session_id),
        "page select": lambda: h.select(event, session_id, []),
        "page change_axes": lambda: h.change_axes("helpful", "safe", round_id, session_id),
        "page switch_round": lambda: h.switch_round(round_id, session_id, None, None),
        "compare open_default": lambda: ch.open_default(session_id, round_id, None, None),
        "compare open_clicked": lambda: ch.open_clicked(session_id, round_id, [0, 1], None, None),
        "compare menus (open_picked)": lambda: ch.open_picked(0, 1, session_id, round_id, round_id, None, None),
        "compare vote": lambda: ch.vote(session_id, round_id, 0, 1, None, None, None),
        "compare api vote": lambda: ch.api_vote(session_id, round_id, 0, 1, "a"),
        "compare refresh_learned": lambda: ch.refresh_learned(session_id, round_id, None, None),
        "compare use_mine": lambda: ch.use_mine(session_id, round_id, None, None),
    }


def _refusal(call) -> str:
    with pytest.raises((UserError, gr.Error)) as caught:
        call()
    return str(caught.value)


def test_every_round_path_refuses_other_sessions_alike(page):
    owner = page.owner
    before = _snapshot(page.explorer, owner)
    foreign = _probes(page, owner.round_id, page.intruder)
    nowhere = _probes(page, NOWHERE, page.intruder)
    refused = 0
    for name, call in foreign.items():
        if name == "compare use_mine":
            continue  # needs a learned direction first; checked below once the intruder has one
        message = _refusal(call)
        assert message == _refusal(nowhere[name]), name  # existing or not, the same words
        assert owner.round_id not in message or name.startswith("api"), name
        refused += 1
    assert refused == len(foreign) - 1 >= 20
    assert _snapshot(page.explorer, owner) == before  # nothing was read out or written in


def test_refusal_names_no_round_and_is_the_store_s(page):
    with pytest.raises(NotFoundError) as caught:
        page.explorer.get_round(page.owner.round_id, page.intruder)
    assert str(caught.value) == ROUND_REFUSAL


def test_use_mine_with_a_learned_direction_cannot_write_into_another_session(page):
    intruder = page.explorer.run_round("Learn something", GenerationParams(n=4, max_new_tokens=3, seed=3))
    sid = intruder.session_id
    page.explorer.vote(sid, intruder.round_id, 0, 1, "a")
    page.explorer.vote(sid, intruder.round_id, 2, 3, "b")
    assert page.explorer.learned_direction(sid) is not None
    before = _snapshot(page.explorer, page.owner)
    assert _refusal(lambda: page.ch.use_mine(sid, page.owner.round_id, None, None)) == \
        _refusal(lambda: page.ch.use_mine(sid, NOWHERE, None, None))
    assert _snapshot(page.explorer, page.owner) == before


def test_exports_carry_no_session_key(page):
    text = page.explorer.export_session(page.owner.session_id, "json")
    assert page.owner.session_id not in text and page.owner.round_id in text
    for fmt in ("csv", "trl"):
        assert page.owner.session_id not in page.explorer.export_session(page.owner.session_id, fmt)


def test_cli_refuses_unknown_sessions(page, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MO_EXPLORER_DATABASE_URL", page.explorer.store.url)
    assert main(["export", page.owner.round_id, "--format", "json", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown session" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
