"""Engine construction: SQLite pragmas, explicit BEGIN control, and the schema version check."""

from __future__ import annotations

import logging
import sqlite3
import time

from sqlalchemy import Engine, create_engine, event, insert, inspect, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from mo_explorer.storage.tables import Base, MetaRow

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
# version -> the statements that bring a database of that version to the next one (run in one transaction).
MIGRATIONS = {
    1: ["ALTER TABLE mo_rounds ADD COLUMN owner VARCHAR(160)",  # v2: running rounds carry their owner
        "ALTER TABLE mo_rounds ADD COLUMN heartbeat FLOAT"],
    2: [],  # v3: the mo_shares table, which create_all adds after the steps
}
BUSY_TIMEOUT_MS = 10_000
WRITE_OPTION = "mo_explorer_write"  # execution option marking a connection that will write


class SchemaVersionError(RuntimeError):
    """The database was written by another (newer) schema version of mo-explorer."""


def is_sqlite_memory(url: str) -> bool:
    """Whether a URL names an in-memory SQLite database (one per connection unless shared)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and (
        parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory")


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL; for SQLite: WAL (files), foreign keys, busy timeout, BEGIN IMMEDIATE writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    memory = is_sqlite_memory(url)
    # In memory every connection is a separate database: StaticPool makes all threads share one.
    kwargs = {"poolclass": StaticPool} if memory else {}
    engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take over BEGIN from the sqlite3 driver (its legacy mode skips BEGIN before SELECT) so each
        # transaction is explicit; see "Transactions with SQLite and the sqlite3 driver" in the SQLAlchemy docs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if not memory:
                # WAL: readers never block the single writer, which suits a web server with many threads.
                _switch_to_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # A write transaction takes the write lock up front: a deferred one that reads first and then
        # writes can fail with SQLITE_BUSY without waiting, when another writer committed in between.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")

    return engine


def _switch_to_wal(cursor) -> None:
    """Set WAL journaling, retrying while another connection holds the file lock."""
    # Switching a fresh file to WAL needs an exclusive lock. When two connections try at once, SQLite
    # answers one with SQLITE_BUSY at once, without calling the busy handler (it would deadlock), so
    # busy_timeout does not cover this step: retry here for as long as that timeout would have waited.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def ensure_schema(engine: Engine) -> None:
    """Create missing tables and record SCHEMA_VERSION; refuse a database of another version."""
    # One write transaction (BEGIN IMMEDIATE on SQLite, whose DDL is transactional): two processes opening
    # a fresh file at once take turns instead of both trying to create the tables.
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if inspect(conn).has_table(MetaRow.__tablename__):
            stored = conn.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
            if stored is not None:
                version = check_version(stored, str(engine.url))
                if version < SCHEMA_VERSION:
                    _migrate(conn, version)
                return
        Base.metadata.create_all(conn)
        conn.execute(insert(MetaRow).values(key="schema_version", value=str(SCHEMA_VERSION)))
    logger.info("initialised mo-explorer schema version %d at %s", SCHEMA_VERSION, engine.url)


def _migrate(conn, version: int) -> None:
    """Bring a database from `version` to SCHEMA_VERSION inside the caller's write transaction."""
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            conn.exec_driver_sql(statement)
    Base.metadata.create_all(conn)  # tables added by later versions (checkfirst: existing ones are left alone)
    conn.execute(update(MetaRow).where(MetaRow.key == "schema_version").values(value=str(SCHEMA_VERSION)))
    logger.info("migrated the mo-explorer schema from version %d to %d at %s", version, SCHEMA_VERSION, conn.engine.url)


def check_version(stored: str, where: str) -> int:
    """The stored version as an int; SchemaVersionError if unreadable, newer, or older than any migration."""
    try:
        version = int(stored)
    except ValueError as exc:
        raise SchemaVersionError(f"database {where} has an unreadable schema version {stored!r}") from exc
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database {where} uses schema version {version}, but this mo-explorer only knows version "
            f"{SCHEMA_VERSION}: upgrade mo-explorer or point it at another database")
    if version < SCHEMA_VERSION and version not in MIGRATIONS:
        raise SchemaVersionError(
            f"database {where} uses old schema version {version} (current {SCHEMA_VERSION}) and no migration "
            "exists: export its sessions with the old version, then import them into a new database")
    return version
