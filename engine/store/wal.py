"""Copies a SQLite store's write-ahead log into its database file from a
thread of its own, so that no commit of the engine does it.

A commit that crosses SQLite's autocheckpoint copies the whole log in the
committing thread: 60-90 ms every 40-50 batches of 100 orders, during which
no order is answered (benchmarks/README.md, issue 19). Here a thread with
its own connection runs a PASSIVE checkpoint four times a second: it never
waits for the writer or the readers, and SQLite leaves the GIL while it
copies, so the engine's thread goes on routing. The writer's own
autocheckpoint stays as a backstop, far out, for a thread that fell behind
or died."""
from __future__ import annotations

import logging
import sqlite3
import threading

from engine.threads import name_os_thread

log = logging.getLogger("o2o.store")

# At 5,000 orders/s about 4,000 pages a time. Every 1 s or 3 s the database file's sync (60-180 MB) held
# up the writer's own sync: commits of 60-200 ms again, where 0.25 s left none over 14 ms.
EVERY_S = 0.25
BACKSTOP_PAGES = 100_000  # the writer's autocheckpoint (SQLite's default 1,000): about 400 MB of log
# SQLite starts the log over only when a write begins with every frame copied, which PASSIVE checkpoints racing
# a busy writer rarely leave: the log grew to the backstop, past which every commit also checkpointed (and
# synced the database file) in the engine's thread. Past this many pages the thread restarts the log.
RESTART_PAGES = 16_384  # 64 MiB of log: at 5,000 orders/s about every 1.5 s
RESTART_WAIT_S = 0.0  # no waiting for the writer or the readers: new writes wait only for the copy; else next time


class Checkpointer:
    """A daemon thread checkpointing the database file at `path` every `every_s`."""

    def __init__(self, path: str, every_s: float = EVERY_S):
        self.every_s = every_s
        self.restart_pages = RESTART_PAGES  # (tests lower it)
        self.runs = 0  # checkpoints done (tests)
        self.restarts = 0  # logs started over (tests)
        self._conn = sqlite3.connect(path, uri=True, check_same_thread=False, isolation_level=None,
                                     timeout=RESTART_WAIT_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        name_os_thread()
        while not self._stop.wait(self.every_s):
            busy, pages, _ = self.checkpoint()
            # a RESTART copies what the writer added meanwhile (new writes wait that long), then starts over
            if not busy and pages >= self.restart_pages and self.checkpoint("RESTART")[0] == 0:
                self.restarts += 1

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """(busy, pages in the log, pages copied): SQLite's answer."""
        try:
            busy, pages, copied = self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as e:  # the backstop copies the log meanwhile
            log.warning("WAL checkpoint failed: %s", e)
            return 1, -1, -1
        self.runs += 1
        return busy, pages, copied

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()
