"""PostgreSQL notifications: wake idle workers when commands are queued
(``playloop_commands``, payload: the pool) and waiters when an execution ends
(``playloop_executions``, payload: the execution id)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

import psycopg

log = logging.getLogger("playloop.worker")
COMMANDS = "playloop_commands"
EXECUTIONS = "playloop_executions"
#: how long one wait for notifications lasts: ``stop`` (an engine's close) waits up to this
_POLL_SECONDS = 0.1


class Listener:
    """A thread holding one connection in LISTEN; calls ``handlers[channel](payload)``.

    It reconnects with backoff when the database goes away (a restart) and then calls every
    handler with ``None``, since notifications sent while it was down are lost.
    """

    def __init__(self, dsn: str, handlers: Mapping[str, Callable[[str | None], None]]) -> None:
        self.dsn = dsn
        self.handlers = dict(handlers)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="playloop-listen", daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    for channel in self.handlers:
                        conn.execute(f"LISTEN {channel}".encode())
                    self._ready.set()
                    for handler in self.handlers.values():
                        handler(None)
                    backoff = 0.1
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=_POLL_SECONDS, stop_after=256):
                            on_notify = self.handlers.get(notify.channel)
                            if on_notify is not None:
                                on_notify(notify.payload)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                log.warning("listener: %s; reconnecting in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
