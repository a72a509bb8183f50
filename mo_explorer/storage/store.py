"""The Store: every read and write of sessions, rounds, directions and votes, one short transaction each."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, selectinload

from mo_explorer.errors import NotFoundError, UserError
from mo_explorer.schema import Candidate, Direction, GenerationParams, Message, Round, SessionSummary, Vote
from mo_explorer.storage import convert, exchange
from mo_explorer.storage.engine import WRITE_OPTION, ensure_schema, is_sqlite_memory, make_engine
from mo_explorer.storage.tables import CandidateRow, DirectionRow, RoundRow, SessionRow, ShareRow, VoteRow
from mo_explorer.validation import ID_RE

logger = logging.getLogger(__name__)
STALE_AFTER_S = 120.0  # a running round not stamped for this long (the Explorer stamps every 10 s) is orphaned
_PROCESS_TOKEN = secrets.token_hex(6)  # tells this process from an earlier one that had the same pid
# The same words whether the round exists elsewhere or nowhere (see _round_row).
ROUND_REFUSAL = "unknown round: this session has no round with that id"


class Store:
    """Sessions stored in any SQLAlchemy database; returns schema types, safe to share between threads."""

    def __init__(self, url: str, owner: str | None = None) -> None:
        self.url = url
        # Who writes the rounds this Store opens: this process, unless a test stands in for another one.
        self.owner = owner or process_owner()
        self._engine = make_engine(url)
        self._write_engine = self._engine.execution_options(**{WRITE_OPTION: True})
        # SQLite has one writer: queueing writes here is cheaper than busy-waiting on the file lock.
        # In memory all threads share one connection, so reads must queue too (one transaction at a time).
        self._write_lock = threading.Lock()
        self._read_lock = self._write_lock if is_sqlite_memory(url) else contextlib.nullcontext()
        try:
            ensure_schema(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._read_lock, Session(self._engine) as session, session.begin():
            yield session

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._write_lock, Session(self._write_engine) as session, session.begin():
            yield session

    # ---- sessions -------------------------------------------------------------------------------------------

    def create_session(self) -> str:
        """Start an empty session; returns its unguessable id."""
        session_id = convert.new_id()
        with self._writing() as s:
            s.add(SessionRow(id=session_id, created_at=convert.now_utc()))
        return session_id

    def session_exists(self, session_id: str) -> bool:
        """Whether a session id is stored."""
        with self._reading() as s:
            return s.scalar(select(SessionRow.pk).where(SessionRow.id == session_id)) is not None

    def get_session(self, session_id: str) -> SessionSummary:
        """One session with its rounds' ids and prompt previews; NotFoundError if unknown."""
        with self._reading() as s:
            row = _session_row(s, session_id)
            return _summaries(s, [row])[0]

    def list_sessions(self, limit: int = 50) -> list[SessionSummary]:
        """The newest `limit` sessions, newest first."""
        with self._reading() as s:
            rows = s.scalars(select(SessionRow).order_by(SessionRow.pk.desc()).limit(max(0, int(limit)))).all()
            return _summaries(s, rows)

    def delete_session(self, session_id: str) -> None:
        """Delete a session with its rounds, candidates, directions, votes and share; NotFoundError if unknown."""
        with self._writing() as s:
            row = _session_row(s, session_id)
            # one statement, run now: deleted through the ORM, the share could be flushed after the session row,
            # whose ON DELETE CASCADE had already removed it (SQLAlchemy then warned of a delete that matched 0 rows)
            s.execute(delete(ShareRow).where(ShareRow.session_pk == row.pk))
            s.delete(row)

    def delete_idle_sessions(self, before: str) -> int:
        """Delete the sessions with nothing created since `before` (ISO-8601 UTC): no round, direction or vote, and
        the session itself older; returns how many. Running rounds keep their session."""
        active = [exists().where(RoundRow.session_pk == SessionRow.pk,
                                 (RoundRow.created_at >= before) | (RoundRow.status == "running")),
                  exists().where(VoteRow.session_pk == SessionRow.pk, VoteRow.created_at >= before),
                  exists().where(DirectionRow.round_pk == RoundRow.pk, RoundRow.session_pk == SessionRow.pk,
                                 DirectionRow.created_at >= before)]
        idle = select(SessionRow.pk).where(SessionRow.created_at < before, *[~a for a in active])
        with self._writing() as s:
            pks = list(s.scalars(idle))
            for chunk in range(0, len(pks), 500):  # bounded IN lists; children first, as the ORM cascade would
                part = pks[chunk:chunk + 500]
                rounds = select(RoundRow.pk).where(RoundRow.session_pk.in_(part))
                s.execute(delete(VoteRow).where(VoteRow.session_pk.in_(part)))
                s.execute(delete(DirectionRow).where(DirectionRow.round_pk.in_(rounds)))
                s.execute(delete(CandidateRow).where(CandidateRow.round_pk.in_(rounds)))
                s.execute(delete(RoundRow).where(RoundRow.session_pk.in_(part)))
                s.execute(delete(ShareRow).where(ShareRow.session_pk.in_(part)))
                s.execute(delete(SessionRow).where(SessionRow.pk.in_(part)))
        return len(pks)

    def used_bytes(self) -> int | None:
        """Bytes the stored data takes (SQLite pages in use, free pages left out); None for other databases."""
        if self._engine.dialect.name != "sqlite":
            return None
        with self._reading() as s:
            pragma = s.connection().exec_driver_sql
            used = pragma("PRAGMA page_count").scalar() - pragma("PRAGMA freelist_count").scalar()
            return int(used * pragma("PRAGMA page_size").scalar())

    def share_token(self, session_id: str) -> str:
        """The session's read-only share token (made on first use); it opens copies, never the session."""
        with self._writing() as s:
            row = _session_row(s, session_id)
            token = s.scalar(select(ShareRow.token).where(ShareRow.session_pk == row.pk))
            if token is None:
                token = convert.new_id()
                s.add(ShareRow(token=token, session_pk=row.pk, created_at=convert.now_utc()))
            return token

    def shared_session_id(self, token: str) -> str:
        """The session a share token copies from; NotFoundError (one wording for any bad token) otherwise."""
        with self._reading() as s:
            found = s.scalar(select(SessionRow.id).join(ShareRow, ShareRow.session_pk == SessionRow.pk)
                             .where(ShareRow.token == token)) if _well_formed(token) else None
        if found is None:
            raise NotFoundError("unknown or withdrawn share link")
        return found

    # ---- rounds ---------------------------------------------------------------------------------------------

    def create_round(self, session_id: str, prompt: list[Message], params: GenerationParams, generator_id: str,
                     reward_model_id: str, objectives: tuple[str, ...], measured: tuple[bool, ...],
                     maximize: tuple[bool, ...], gating: np.ndarray, transform: np.ndarray) -> str:
        """Open a "running" round; gating (k_model,), transform (k_model, k_model) over non-measured objectives."""
        messages = convert.check_messages(list(prompt))
        params = convert.params_from_json(params.to_dict())
        gating_arr, transform_arr = convert.check_layout(objectives, measured, maximize, gating, transform)
        round_id = convert.new_id()
        with self._writing() as s:
            session_row = _session_row(s, session_id)
            s.add(RoundRow(
                id=round_id, session_pk=session_row.pk, created_at=convert.now_utc(), prompt=messages,
                params=params.to_dict(), generator_id=str(generator_id), reward_model_id=str(reward_model_id),
                objectives=list(objectives), measured=[bool(m) for m in measured],
                maximize=[bool(m) for m in maximize], gating=convert.floats_to_json(gating_arr),
                transform=convert.floats_to_json(transform_arr), status="running", error=None,
                owner=self.owner, heartbeat=time.time()))
        return round_id

    def add_candidates(self, round_id: str, session_id: str, candidates: Sequence[Candidate]) -> None:
        """Append scored candidates (rewards (k_all,) each) to a running round of this session."""
        with self._writing() as s:
            row = _round_row(s, round_id, session_id)
            if row.status != "running":
                raise UserError(f"round '{round_id}' is {row.status}; candidates can only be added while it runs")
            s.add_all(exchange.candidate_rows(row, candidates))
            row.heartbeat = time.time()

    def finish_round(self, round_id: str, session_id: str, status: str = "complete",
                     error: str | None = None) -> None:
        """Mark a round of this session "complete", "failed" or "cancelled" (with why); its candidates are kept."""
        if status not in convert.FINISHED_STATUSES:
            raise UserError(f"a round finishes as one of {', '.join(convert.FINISHED_STATUSES)}, not {status!r}")
        with self._writing() as s:
            row = _round_row(s, round_id, session_id)
            row.status, row.error, row.owner, row.heartbeat = status, error, None, None

    def heartbeat(self) -> int:
        """Say that this Store's owner is alive: stamp the time on the rounds it is running; returns how many."""
        with self._writing() as s:
            result = s.execute(update(RoundRow).where(RoundRow.status == "running", RoundRow.owner == self.owner)
                               .values(heartbeat=time.time()))
        return result.rowcount

    def fail_orphaned_rounds(self, error: str, stale_after_s: float = STALE_AFTER_S) -> int:
        """Mark "failed" (with `error`) the running rounds whose owner is gone; returns how many.

        Rounds of live processes are left running, so several servers can share one database: an owner is gone
        when it is an earlier process with this one's pid (a restarted container), a process of this host that
        no longer exists, silent for `stale_after_s` seconds, or unknown (rounds from schema version 1).
        """
        now = time.time()
        with self._writing() as s:
            rows = s.scalars(select(RoundRow).where(RoundRow.status == "running")).all()
            orphans = [row for row in rows if not owner_alive(row.owner, row.heartbeat, now, stale_after_s, self.owner)]
            for row in orphans:
                row.status, row.error, row.owner, row.heartbeat = "failed", error, None, None
        return len(orphans)

    def get_round(self, round_id: str, session_id: str) -> Round:
        """One round of this session with its candidates and latest direction; NotFoundError otherwise."""
        with self._reading() as s:
            row = _round_row(s, round_id, session_id)
            return convert.round_from_row(row, row.candidates, _latest_directions(s, [row.pk]).get(row.pk))

    def list_rounds(self, session_id: str) -> list[Round]:
        """A session's rounds, oldest first; NotFoundError if the session is unknown."""
        with self._reading() as s:
            session_row = _session_row(s, session_id)
            rows = s.scalars(select(RoundRow).where(RoundRow.session_pk == session_row.pk)
                             .options(selectinload(RoundRow.candidates)).order_by(RoundRow.pk)).all()
            latest = _latest_directions(s, [r.pk for r in rows])
            return [convert.round_from_row(r, r.candidates, latest.get(r.pk)) for r in rows]

    # ---- directions -----------------------------------------------------------------------------------------

    def add_direction(self, round_id: str, session_id: str, direction: Direction) -> None:
        """Record a direction as the current one of a round of this session; earlier ones stay in its history."""
        with self._writing() as s:
            row = _round_row(s, round_id, session_id)
            convert.check_direction_fits(direction, row.objectives)
            s.add(DirectionRow(round_pk=row.pk, created_at=convert.now_utc(),
                               direction=convert.direction_to_json(direction)))

    def list_directions(self, round_id: str, session_id: str) -> list[tuple[str, Direction]]:
        """The direction history of a round of this session as (UTC timestamp, direction), oldest first."""
        with self._reading() as s:
            row = _round_row(s, round_id, session_id)
            return [(d.created_at, convert.direction_from_json(d.direction)) for d in row.directions]

    # ---- votes ----------------------------------------------------------------------------------------------

    def add_vote(self, session_id: str, round_id: str, a_index: int, b_index: int, outcome: str,
                 direction: Direction | None = None) -> Vote:
        """Store a judgement between candidates a and b of a round of this session, with copies of what was seen."""
        if outcome not in Vote.OUTCOMES:
            raise UserError(f"unknown vote outcome {outcome!r}; use one of {', '.join(Vote.OUTCOMES)}")
        if int(a_index) == int(b_index):
            raise UserError("a vote compares two different candidates")
        with self._writing() as s:
            session_row = _session_row(s, session_id)
            round_row = _round_row(s, round_id, session_id)
            if direction is not None:
                convert.check_direction_fits(direction, round_row.objectives)
            row = exchange.vote_row(session_row, round_row, int(a_index), int(b_index), outcome,
                                    convert.direction_to_json(direction), convert.now_utc())
            s.add(row)
            s.flush()
            return convert.vote_from_row(row)

    def list_votes(self, session_id: str) -> list[Vote]:
        """A session's votes, oldest first."""
        with self._reading() as s:
            return [convert.vote_from_row(v) for v in _votes(s, _session_row(s, session_id))]

    def vote_records(self, session_id: str) -> list[dict[str, Any]]:
        """A session's votes as self-contained JSON-friendly preference records, oldest first."""
        with self._reading() as s:
            return [convert.vote_record(v) for v in _votes(s, _session_row(s, session_id))]

    # ---- import / export ------------------------------------------------------------------------------------

    def export_session(self, session_id: str) -> dict[str, Any]:
        """The whole session (rounds, candidates, directions, votes) as a JSON-friendly dict."""
        with self._reading() as s:
            return exchange.export_session(s, _session_row(s, session_id))

    def import_session(self, data: dict[str, Any]) -> str:
        """Store an exported session as a NEW session with new ids; UserError naming what is malformed."""
        parsed = exchange.parse_export(data)
        with self._writing() as s:
            session_id = exchange.insert_session(s, parsed)
        logger.info("imported session %s with %d rounds", session_id, len(parsed.rounds))
        return session_id


def process_owner() -> str:
    """This process as the owner of the rounds it runs: "host:pid:token"."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{_PROCESS_TOKEN}"


def owner_alive(owner: str | None, heartbeat: float | None, now: float, stale_after_s: float, me: str) -> bool:
    """Whether the process that owns a running round (see process_owner) is still there."""
    if owner == me:
        return True
    if owner is None or heartbeat is None or now - heartbeat > stale_after_s:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, _token = rest.partition(":")
    my_host, my_pid = me.split(":")[:2]
    if host != my_host or not pid_text.isdigit():
        return True  # another machine: only its heartbeat can tell, and it is fresh
    if pid_text == my_pid:
        return False  # an earlier process with this pid (a restarted container): this one is its successor
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists but belongs to someone else (or cannot be asked): trust the fresh heartbeat
    return True


def _session_row(s: Session, session_id: str) -> SessionRow:
    # An id this store never hands out is unknown without a query (and is not echoed: it may be anything).
    row = s.scalar(select(SessionRow).where(SessionRow.id == session_id)) if _well_formed(session_id) else None
    if row is None:
        raise NotFoundError(f"unknown session id '{session_id}'" if _well_formed(session_id) else
                            "unknown session id")
    return row


def _well_formed(an_id: object) -> bool:
    return isinstance(an_id, str) and ID_RE.fullmatch(an_id) is not None


def _round_row(s: Session, round_id: str, session_id: str) -> RoundRow:
    """The round `round_id` of session `session_id`: the one ownership check every round access goes through.

    A round of another session and a round that does not exist get the same refusal, so a caller holding only a
    round id (every export lists them) learns nothing about it and can neither read nor write it.
    """
    row = None
    if _well_formed(round_id) and _well_formed(session_id):
        row = s.scalar(select(RoundRow).join(SessionRow)
                       .where(RoundRow.id == round_id, SessionRow.id == session_id))
    if row is None:
        raise NotFoundError(ROUND_REFUSAL)
    return row


def _latest_directions(s: Session, round_pks: list[int]) -> dict[int, Any]:
    """round pk -> JSON of its most recent direction, for rounds that have one."""
    if not round_pks:
        return {}
    newest = (select(func.max(DirectionRow.pk)).where(DirectionRow.round_pk.in_(round_pks))
              .group_by(DirectionRow.round_pk))
    rows = s.scalars(select(DirectionRow).where(DirectionRow.pk.in_(newest))).all()
    return {d.round_pk: d.direction for d in rows}


def _summaries(s: Session, rows: Sequence[SessionRow]) -> list[SessionSummary]:
    by_session: dict[int, list[tuple[str, str]]] = {r.pk: [] for r in rows}
    if rows:
        query = (select(RoundRow.session_pk, RoundRow.id, RoundRow.prompt)
                 .where(RoundRow.session_pk.in_(list(by_session))).order_by(RoundRow.pk))
        for session_pk, round_id, prompt in s.execute(query):
            by_session[session_pk].append((round_id, convert.preview(prompt)))
    return [SessionSummary(session_id=r.id, created_at=r.created_at, rounds=tuple(by_session[r.pk])) for r in rows]


def _votes(s: Session, session_row: SessionRow) -> Sequence[VoteRow]:
    return s.scalars(select(VoteRow).where(VoteRow.session_pk == session_row.pk)
                     .options(selectinload(VoteRow.round)).order_by(VoteRow.pk)).all()
