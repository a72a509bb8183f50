"""ORM tables (SQLAlchemy 2 typed declarative). Rows never leave the storage package.

Public ids are random strings; integer primary keys only order rows and join them, so insertion order
(not clock resolution) decides "oldest first" and "newest first".
Arrays and small structures are JSON columns: portable across SQLite and server databases.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ID_LENGTH = 32  # secrets.token_urlsafe(16) is 22 characters; leave room
TIME_LENGTH = 40  # ISO-8601 with microseconds and offset
OWNER_LENGTH = 160  # "host:pid:token"; host names are at most 64 characters (HOST_NAME_MAX on Linux)


NUL_STAND_IN = "\ufffd"  # what a NUL character of generated text becomes in PostgreSQL


class GeneratedText(TypeDecorator):
    """Text as a model wrote it. PostgreSQL refuses NUL characters in text (SQLite keeps them), and a sampled
    answer can hold one (a tiny model did in the tests): there each NUL is stored as U+FFFD, the replacement
    character, instead of failing the round."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and dialect.name == "postgresql" and "\x00" in value:
            return value.replace("\x00", NUL_STAND_IN)
        return value


class Base(DeclarativeBase):
    """Declarative base of every mo-explorer table."""


class MetaRow(Base):
    """Key/value facts about the database itself (the schema version)."""

    __tablename__ = "mo_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def _owned(parent: str, order_by: str):
    """A parent's rows that live and die with it: deleted with the parent (also by the database's ON DELETE
    CASCADE, which passive_deletes leaves to it) or when removed from the list; read back in order_by's order."""
    return relationship(back_populates=parent, cascade="all, delete-orphan", order_by=order_by, passive_deletes=True)


class SessionRow(Base):
    """One user session: a sequence of rounds and votes."""

    __tablename__ = "mo_sessions"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True, index=True)
    created_at: Mapped[str] = mapped_column(String(TIME_LENGTH))

    rounds: Mapped[list[RoundRow]] = _owned("session", "RoundRow.pk")
    votes: Mapped[list[VoteRow]] = _owned("session", "VoteRow.pk")


class ShareRow(Base):
    """A read-only share of a session: whoever has the token gets a copy, never the session itself."""

    __tablename__ = "mo_shares"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True, index=True)
    session_pk: Mapped[int] = mapped_column(ForeignKey("mo_sessions.pk", ondelete="CASCADE"), unique=True,
                                            index=True)
    created_at: Mapped[str] = mapped_column(String(TIME_LENGTH))


class RoundRow(Base):
    """One prompt with its generation parameters, model ids, objective layout and gate."""

    __tablename__ = "mo_rounds"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True, index=True)
    session_pk: Mapped[int] = mapped_column(ForeignKey("mo_sessions.pk", ondelete="CASCADE"), index=True)
    created_at: Mapped[str] = mapped_column(String(TIME_LENGTH))
    prompt: Mapped[list[Any]] = mapped_column(JSON)  # [{"role", "content"}, ...]
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # GenerationParams.to_dict()
    generator_id: Mapped[str] = mapped_column(String(512))
    reward_model_id: Mapped[str] = mapped_column(String(512))
    objectives: Mapped[list[Any]] = mapped_column(JSON)
    measured: Mapped[list[Any]] = mapped_column(JSON)
    maximize: Mapped[list[Any]] = mapped_column(JSON)
    gating: Mapped[list[Any]] = mapped_column(JSON)  # (k_model,)
    transform: Mapped[list[Any]] = mapped_column(JSON)  # (k_model, k_model) as nested lists
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(GeneratedText, nullable=True)
    # While "running": the process writing it ("host:pid:token") and when it last said it is alive (unix time),
    # so a server starting on a shared database fails only the rounds of processes that are gone.
    owner: Mapped[str | None] = mapped_column(String(OWNER_LENGTH), nullable=True)
    heartbeat: Mapped[float | None] = mapped_column(Float, nullable=True)

    session: Mapped[SessionRow] = relationship(back_populates="rounds")
    candidates: Mapped[list[CandidateRow]] = _owned("round", "CandidateRow.idx")
    directions: Mapped[list[DirectionRow]] = _owned("round", "DirectionRow.pk")


class CandidateRow(Base):
    """One scored response of a round."""

    __tablename__ = "mo_candidates"
    __table_args__ = (UniqueConstraint("round_pk", "idx"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_pk: Mapped[int] = mapped_column(ForeignKey("mo_rounds.pk", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(GeneratedText)
    rewards: Mapped[list[Any]] = mapped_column(JSON)  # (k_all,)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # None encodes a non-finite score
    n_tokens: Mapped[int] = mapped_column(Integer)
    gen_seconds: Mapped[float] = mapped_column(Float)

    round: Mapped[RoundRow] = relationship(back_populates="candidates")


class DirectionRow(Base):
    """One preference direction set on a round; the history is kept, the last one is current."""

    __tablename__ = "mo_directions"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_pk: Mapped[int] = mapped_column(ForeignKey("mo_rounds.pk", ondelete="CASCADE"), index=True)
    created_at: Mapped[str] = mapped_column(String(TIME_LENGTH))
    direction: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"objectives", "weights", "method"}

    round: Mapped[RoundRow] = relationship(back_populates="directions")


class VoteRow(Base):
    """A side-by-side judgement, denormalised so an export of votes alone is self-contained."""

    __tablename__ = "mo_votes"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True, index=True)
    session_pk: Mapped[int] = mapped_column(ForeignKey("mo_sessions.pk", ondelete="CASCADE"), index=True)
    round_pk: Mapped[int] = mapped_column(ForeignKey("mo_rounds.pk", ondelete="CASCADE"), index=True)
    created_at: Mapped[str] = mapped_column(String(TIME_LENGTH))
    a_index: Mapped[int] = mapped_column(Integer)
    b_index: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    direction: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Copies taken at vote time, so one row is a complete preference record (vote_records reads no joins).
    prompt: Mapped[list[Any]] = mapped_column(JSON)
    a_text: Mapped[str] = mapped_column(GeneratedText)
    b_text: Mapped[str] = mapped_column(GeneratedText)
    a_rewards: Mapped[list[Any]] = mapped_column(JSON)
    b_rewards: Mapped[list[Any]] = mapped_column(JSON)
    objectives: Mapped[list[Any]] = mapped_column(JSON)
    maximize: Mapped[list[Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    generator_id: Mapped[str] = mapped_column(String(512))
    reward_model_id: Mapped[str] = mapped_column(String(512))

    session: Mapped[SessionRow] = relationship(back_populates="votes")
    round: Mapped[RoundRow] = relationship()
