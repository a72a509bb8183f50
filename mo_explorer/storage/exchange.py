"""Building candidate and vote rows, and the session export/import format ("mo-explorer-session", version 1).

An import is parsed and validated completely before anything is written, so a malformed file leaves no trace.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from mo_explorer.errors import UserError
from mo_explorer.schema import Candidate, Direction, GenerationParams, Message, Vote
from mo_explorer.storage import convert
from mo_explorer.storage.tables import CandidateRow, DirectionRow, RoundRow, SessionRow, VoteRow

EXPORT_FORMAT = "mo-explorer-session"
EXPORT_VERSION = 1
# The reward model's own gated score is shown beside the objectives under this name (plotting.SCORE): an objective
# of that name would be two different things on one axis menu.
RESERVED_OBJECTIVES = ("score",)


def candidate_rows(row: RoundRow, candidates: Sequence[Candidate]) -> list[CandidateRow]:
    """Validated rows (for the caller to add) of candidates appended to a round: unique indices, rewards (k_all,)."""
    taken = {c.idx for c in row.candidates}
    k = len(row.objectives)
    rows = []
    for c in candidates:
        if isinstance(c.index, bool) or not isinstance(c.index, (int, np.integer)) or c.index < 0:
            raise UserError(f"candidate index must be a non-negative integer, got {c.index!r}")
        if int(c.index) in taken:
            raise UserError(f"round '{row.id}' already has a candidate {c.index}")
        taken.add(int(c.index))
        rewards = convert.json_to_floats(c.rewards, (k,), f"candidate {c.index} rewards")
        rows.append(CandidateRow(
            round=row, idx=int(c.index), text=str(c.text), rewards=convert.floats_to_json(rewards),
            score=convert.finite_or_none(c.score), n_tokens=int(c.n_tokens), gen_seconds=float(c.gen_seconds)))
    return rows


def vote_row(session_row: SessionRow, round_row: RoundRow, a_index: int, b_index: int, outcome: str,
             direction: dict[str, Any] | None, created_at: str) -> VoteRow:
    """A vote row carrying copies of the prompt, both candidates, the objectives, params and model ids."""
    by_index = {c.idx: c for c in round_row.candidates}
    for index in (a_index, b_index):
        if index not in by_index:
            raise UserError(f"round '{round_row.id}' has no candidate {index} (it has {sorted(by_index)})")
    a, b = by_index[a_index], by_index[b_index]
    return VoteRow(
        id=convert.new_id(), session=session_row, round=round_row, created_at=created_at, a_index=a_index,
        b_index=b_index, outcome=outcome, direction=direction, prompt=list(round_row.prompt), a_text=a.text,
        b_text=b.text, a_rewards=list(a.rewards), b_rewards=list(b.rewards), objectives=list(round_row.objectives),
        maximize=list(round_row.maximize), params=dict(round_row.params), generator_id=round_row.generator_id,
        reward_model_id=round_row.reward_model_id)


def export_session(s: Session, row: SessionRow) -> dict[str, Any]:
    """A stored session in the export format (JSON-friendly: lists, strings, numbers, None)."""
    rounds = []
    for r in row.rounds:
        rounds.append({
            "round_id": r.id, "created_at": r.created_at, "prompt": list(r.prompt), "params": dict(r.params),
            "generator_id": r.generator_id, "reward_model_id": r.reward_model_id,
            "objectives": list(r.objectives), "measured": list(r.measured), "maximize": list(r.maximize),
            "gating": list(r.gating), "transform": list(r.transform), "status": r.status, "error": r.error,
            "candidates": [{"index": c.idx, "text": c.text, "rewards": list(c.rewards), "score": c.score,
                            "n_tokens": c.n_tokens, "gen_seconds": c.gen_seconds} for c in r.candidates],
            "directions": [{"created_at": d.created_at, "direction": d.direction} for d in r.directions],
        })
    votes = [{"vote_id": v.id, "round_id": v.round.id, "created_at": v.created_at, "a_index": v.a_index,
              "b_index": v.b_index, "outcome": v.outcome, "direction": v.direction} for v in row.votes]
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": convert.now_utc(),
            # No session id: it is the key to the session, and an export is meant to be shared.
            "session": {"created_at": row.created_at}, "rounds": rounds, "votes": votes}


@dataclass(frozen=True)
class ParsedRound:
    """A validated round of an export."""

    old_id: str
    created_at: str
    prompt: list[Message]
    params: GenerationParams
    generator_id: str
    reward_model_id: str
    objectives: tuple[str, ...]
    measured: tuple[bool, ...]
    maximize: tuple[bool, ...]
    gating: np.ndarray  # (k_model,)
    transform: np.ndarray  # (k_model, k_model)
    status: str
    error: str | None
    candidates: tuple[Candidate, ...]
    directions: tuple[tuple[str, Direction], ...]


@dataclass(frozen=True)
class ParsedVote:
    """A validated vote of an export, pointing at a round by its old id."""

    round_old_id: str
    created_at: str
    a_index: int
    b_index: int
    outcome: str
    direction: Direction | None


@dataclass(frozen=True)
class ParsedSession:
    """A validated export, ready to insert."""

    rounds: tuple[ParsedRound, ...]
    votes: tuple[ParsedVote, ...]


def parse_export(data: Any) -> ParsedSession:
    """Validate an exported session completely; UserError naming the first malformed part."""
    if not isinstance(data, dict):
        raise UserError("a session file must hold a JSON object")
    if data.get("format") != EXPORT_FORMAT:
        raise UserError(f"not a mo-explorer session file: 'format' must be {EXPORT_FORMAT!r}")
    if data.get("version") != EXPORT_VERSION:
        raise UserError(f"unsupported session file version (this build reads {EXPORT_VERSION})")
    rounds = tuple(_parse_round(r, f"rounds[{i}]") for i, r in enumerate(_get(data, "rounds", list, "file")))
    by_id = {r.old_id: r for r in rounds}
    if len(by_id) != len(rounds):
        raise UserError("rounds: round ids must be unique")
    votes = tuple(_parse_vote(v, f"votes[{i}]", by_id) for i, v in enumerate(_get(data, "votes", list, "file")))
    return ParsedSession(rounds=rounds, votes=votes)


def insert_session(s: Session, parsed: ParsedSession) -> str:
    """Insert a parsed export as a new session with fresh ids; returns the new session id."""
    session_row = SessionRow(id=convert.new_id(), created_at=convert.now_utc())
    s.add(session_row)
    round_rows: dict[str, RoundRow] = {}
    for r in parsed.rounds:
        row = RoundRow(
            id=convert.new_id(), session=session_row, created_at=r.created_at, prompt=r.prompt,
            params=r.params.to_dict(), generator_id=r.generator_id, reward_model_id=r.reward_model_id,
            objectives=list(r.objectives), measured=list(r.measured), maximize=list(r.maximize),
            gating=convert.floats_to_json(r.gating), transform=convert.floats_to_json(r.transform),
            status=r.status, error=r.error)
        s.add(row)  # SQLAlchemy 2 no longer cascades through backrefs: add each round explicitly, in order
        s.add_all(candidate_rows(row, r.candidates))
        for created_at, direction in r.directions:
            row.directions.append(DirectionRow(created_at=created_at, direction=convert.direction_to_json(direction)))
        round_rows[r.old_id] = row
    for v in parsed.votes:
        s.add(vote_row(session_row, round_rows[v.round_old_id], v.a_index, v.b_index, v.outcome,
                       convert.direction_to_json(v.direction), v.created_at))
    s.flush()
    return session_row.id


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in obj:
        raise UserError(f"{what}: missing '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{what}.{key}: wrong type {type(value).__name__}")
    return value


def _timestamp(obj: dict[str, Any], what: str) -> str:
    value = _get(obj, "created_at", str, what)
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise UserError(f"{what}.created_at: not an ISO-8601 time: {value!r}") from exc
    return value


def _parse_round(r: Any, what: str) -> ParsedRound:
    if not isinstance(r, dict):
        raise UserError(f"{what} must be an object")
    objectives = tuple(_get(r, "objectives", list, what))
    reserved = [name for name in objectives if name in RESERVED_OBJECTIVES]
    if reserved:
        raise UserError(f"{what}.objectives: {reserved[0]!r} is the reward model's own score, not an objective name")
    measured = tuple(_get(r, "measured", list, what))
    maximize = tuple(_get(r, "maximize", list, what))
    try:
        gating, transform = convert.check_layout(objectives, measured, maximize, _get(r, "gating", list, what),
                                                 _get(r, "transform", list, what))
    except UserError as exc:
        raise UserError(f"{what}: {exc}") from exc
    status = _get(r, "status", str, what)
    if status not in convert.ROUND_STATUSES:
        raise UserError(f"{what}.status: must be one of {', '.join(convert.ROUND_STATUSES)}")
    error = r.get("error")
    if error is not None and not isinstance(error, str):
        raise UserError(f"{what}.error: must be text or null")
    if status == "running":
        # Nothing will ever finish an imported round: keep its candidates, say why it stopped.
        status, error = "failed", error or "interrupted: the round was still running when it was exported"
    candidates = tuple(_parse_candidate(c, f"{what}.candidates[{j}]", len(objectives))
                       for j, c in enumerate(_get(r, "candidates", list, what)))
    if len({c.index for c in candidates}) != len(candidates):
        raise UserError(f"{what}.candidates: indices must be unique")
    directions = []
    for j, d in enumerate(_get(r, "directions", list, what)):
        where = f"{what}.directions[{j}]"
        if not isinstance(d, dict):
            raise UserError(f"{where} must be an object")
        direction = convert.direction_from_json(_get(d, "direction", dict, where), f"{where}.direction")
        convert.check_direction_fits(direction, objectives, f"{where}.direction")
        directions.append((_timestamp(d, where), direction))
    return ParsedRound(
        old_id=_get(r, "round_id", str, what), created_at=_timestamp(r, what),
        prompt=convert.check_messages(_get(r, "prompt", list, what), f"{what}.prompt"),
        params=convert.params_from_json(_get(r, "params", dict, what), f"{what}.params"),
        generator_id=_get(r, "generator_id", str, what), reward_model_id=_get(r, "reward_model_id", str, what),
        objectives=objectives, measured=measured, maximize=maximize, gating=gating, transform=transform,
        status=status, error=error, candidates=candidates, directions=tuple(directions))


def _parse_candidate(c: Any, what: str, k: int) -> Candidate:
    if not isinstance(c, dict):
        raise UserError(f"{what} must be an object")
    index = _get(c, "index", int, what)
    if index < 0:
        raise UserError(f"{what}.index: must not be negative")
    score = c.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise UserError(f"{what}.score: must be a number or null")
    return Candidate(
        index=index, text=_get(c, "text", str, what),
        rewards=convert.json_to_floats(_get(c, "rewards", list, what), (k,), f"{what}.rewards"),
        score=math.nan if score is None else float(score), n_tokens=_get(c, "n_tokens", int, what),
        gen_seconds=float(_get(c, "gen_seconds", (int, float), what)))


def _parse_vote(v: Any, what: str, rounds: dict[str, ParsedRound]) -> ParsedVote:
    if not isinstance(v, dict):
        raise UserError(f"{what} must be an object")
    round_id = _get(v, "round_id", str, what)
    if round_id not in rounds:
        raise UserError(f"{what}.round_id: no round '{round_id}' in this file")
    indices = {c.index for c in rounds[round_id].candidates}
    a, b = _get(v, "a_index", int, what), _get(v, "b_index", int, what)
    if a == b or a not in indices or b not in indices:
        raise UserError(f"{what}: a_index and b_index must be two different candidates of round '{round_id}'")
    outcome = _get(v, "outcome", str, what)
    if outcome not in Vote.OUTCOMES:
        raise UserError(f"{what}.outcome: must be one of {', '.join(Vote.OUTCOMES)}")
    direction = convert.direction_from_json(v.get("direction"), f"{what}.direction")
    if direction is not None:
        convert.check_direction_fits(direction, rounds[round_id].objectives, f"{what}.direction")
    return ParsedVote(round_old_id=round_id, created_at=_timestamp(v, what), a_index=a, b_index=b, outcome=outcome,
                      direction=direction)
