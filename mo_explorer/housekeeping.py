"""Bounds on what a public page stores: idle sessions removed at start and daily, and a ceiling on the database.

Without them a Space's disk only ever fills: every visitor's session stays forever. Sessions idle for
`storage.idle_days` are deleted; while the stored data is above `storage.max_database_mb`, new rounds are refused
(`Admission` asks `storage_full`), and deleting idle sessions frees pages that SQLite reuses.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

from mo_explorer.config import StorageSettings

log = logging.getLogger(__name__)
DAY_S = 24 * 3600.0
MB = 1024 * 1024


class Housekeeper:
    """Removes idle sessions (now, then every `interval_s`) and says when the database is full."""

    def __init__(self, store, settings: StorageSettings):
        self.store = store
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def remove_idle(self, now: datetime | None = None) -> int:
        """Delete the sessions idle for longer than idle_days; returns how many (0 when idle_days is 0)."""
        days = self.settings.idle_days
        if days <= 0:
            return 0
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
        removed = self.store.delete_idle_sessions(cutoff.isoformat(timespec="microseconds"))
        log.info("removed %d session(s) idle for more than %g days", removed, days)
        return removed

    def storage_full(self) -> str | None:
        """Why new rounds are refused now (stored data above max_database_mb), or None."""
        ceiling = self.settings.max_database_mb
        used = self.store.used_bytes() if ceiling > 0 else None
        if used is None or used <= ceiling * MB:
            return None
        return (f"The demo's storage is full ({used / MB:.0f} MB of {ceiling:g} MB): new rounds are paused until "
                f"sessions idle for {self.settings.idle_days:g} days are removed (once a day). Your session's "
                "rounds and votes stay readable and exportable.")

    def start(self, interval_s: float = DAY_S) -> None:
        """Remove idle sessions now, then every interval_s on a daemon thread, until stop()."""
        self._safely_remove()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(interval_s,), name="housekeeping", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the daily removal (the thread exits at its next wake-up, at once)."""
        self._stop.set()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self._safely_remove()

    def _safely_remove(self) -> None:
        try:
            self.remove_idle()
        except Exception:  # a failed clean-up must not stop the server; the next one tries again
            log.exception("could not remove idle sessions")
