"""Wake idle workers when commands are queued: PostgreSQL ``LISTEN playloop_commands``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

log = logging.getLogger("playloop.worker")
CHANNEL = "playloop_commands"


class CommandListener:
    """A thread holding one connection in LISTEN; calls ``wake`` for our pool's notifications.

    It reconnects with backoff when the database goes away (a restart), and calls ``wake``
    after reconnecting, since notifications sent while it was down are lost.
    """

    def __init__(self, dsn: str, wake: Callable[[], None], pool: str | None = None) -> None:
        self.dsn = dsn
        self.wake = wake
        self.pool = pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="playloop-listen", daemon=True)

    def start(self) -> CommandListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.wake()
                    backoff = 0.1
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=0.5, stop_after=64):
                            if self.pool is None or notify.payload == self.pool:
                                self.wake()
                                break
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                log.warning("command listener: %s; reconnecting in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
