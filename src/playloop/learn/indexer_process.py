"""The indexer in a process of its own, beside the engine that woke it.

Why a process: qdrant-edge-py holds the GIL through a shard's ``flush`` (about 20 ms per
pass here) and its ``optimize`` (the HNSW build, every 20,000 points written: 7 s at 20k
points, minutes at 100k). In the engine's process every step's thread and the engine's
loop would stand still meanwhile; in a child only the indexer does. (It runs at the
engine's CPU priority: at ``nice`` 10 the steps' p99 was worse, 80-95 ms against 27-45 ms
in ``benchmarks.learning.indexing_load`` on SQLite; a child descheduled while it holds the
database's write lock for its checkpoint stalls every commit of the engine.)

The parent (``IndexerProcess``) writes one command per line on the child's stdin; the
child answers the ones that ask on its stdout:

- ``wake``: a committed batch holds something to index (no answer);
- ``flush SECONDS``: index what is committed now, for up to SECONDS; answers
  ``{"to": "flush", "caught_up": bool}``;
- ``status``: answers ``{"to": "status", "passes": n, "model_loaded": bool, "pid": n}``;
- ``close SECONDS``: index what is committed (up to SECONDS), then exit.

End of input (the parent is gone, even killed with -9) ends the child after a short flush:
no indexer outlives its engine. The child keeps the index the way an in-process indexer
does (its claim, its checkpoints, its own database connection), so either may run; the
parent's similar-failure lookups read the child's shards through it (Edge) or the Qdrant
server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from playloop.engine.events import Event
from playloop.learn.indexer import RELEVANT

__all__ = ["IndexerProcess", "main"]

log = logging.getLogger("playloop.learn")

#: seconds an indexer that died is left down before a wake starts another
RESTART_AFTER = 30.0
#: seconds the child indexes at end of input (its parent is gone)
ORPHAN_FLUSH = 2.0


class IndexerProcess:
    """The parent's handle on the child indexer: start, wake, ask, close."""

    def __init__(self, home: Path, db_url: str) -> None:
        self.home = Path(home)
        self.db_url = db_url
        self.proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._lock = threading.Lock()  # one conversation with the child at a time
        self._pending = b""  # what stdout gave beyond the last answer

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> IndexerProcess:
        self._discard()
        command = [
            sys.executable, "-m", "playloop.learn.indexer_process",
            "--home", str(self.home), "--db", self.db_url,
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)  # a wake never blocks the engine
        self._started = time.monotonic()
        return self

    def _discard(self) -> None:
        """Close the pipes of a child that ended (before another takes its place)."""
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
            self._pending = b""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def notify(self, events: Sequence[Event]) -> None:
        """An engine listener: wake the child when a batch holds something it indexes."""
        if any(e.event_type in RELEVANT for e in events):
            self.wake()

    def wake(self) -> None:
        if not self.alive():
            if self.proc is not None and time.monotonic() - self._started < RESTART_AFTER:
                return
            if self.proc is not None:
                log.warning(
                    "indexer process %s ended (%s): starting another",
                    self.pid,
                    self.proc.returncode,
                )
            self.start()
        self._send(b"wake\n")

    def _send(self, line: bytes, deadline: float | None = None) -> bool:
        """Write one command line to the child. A line shorter than the pipe's atomic size
        goes in whole or not at all; when the pipe is full (of wakes), a wake is dropped
        (the child has wakes to read) and any other command waits until ``deadline``."""
        while True:
            proc = self.proc
            if proc is None or proc.stdin is None or proc.stdin.closed:
                return False
            try:
                os.write(proc.stdin.fileno(), line)
                return True
            except BlockingIOError:
                if deadline is None:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)
            except OSError:  # a broken pipe: the child ended
                return False

    def ask(self, command: str, timeout: float) -> dict[str, Any] | None:
        """Send ``command`` and wait up to ``timeout`` for its answer (None: none came)."""
        with self._lock:
            proc = self.proc
            if proc is None or proc.stdout is None or not self.alive():
                return None
            deadline = time.monotonic() + timeout
            if not self._send(f"{command}\n".encode(), deadline):
                return None
            return self._answer(proc.stdout, command.partition(" ")[0], deadline)

    def _answer(self, stdout: IO[bytes], to: str, deadline: float) -> dict[str, Any] | None:
        """The child's answer to ``to``; a late answer to an earlier question (one that
        timed out) is passed over."""
        fd = stdout.fileno()
        while True:
            while b"\n" not in self._pending:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._pending += chunk
            line, _, self._pending = self._pending.partition(b"\n")
            answer = orjson.loads(line)
            if isinstance(answer, dict) and answer.get("to") == to:
                return answer

    def flush(self, timeout: float) -> bool:
        """Index what is committed, for up to ``timeout`` seconds; True when caught up."""
        answer = self.ask(f"flush {timeout:g}", timeout + 5.0)
        return bool(answer and answer.get("caught_up"))

    def status(self, timeout: float = 10.0) -> dict[str, Any] | None:
        return self.ask("status", timeout)

    def close(self, flush_seconds: float) -> None:
        """Let the child index what is committed (up to ``flush_seconds``), then end it."""
        proc = self.proc
        if proc is None:
            return
        with self._lock:
            if proc.poll() is None:
                self._send(f"close {flush_seconds:g}\n".encode(), time.monotonic() + 1.0)
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(flush_seconds + 10.0)
            except subprocess.TimeoutExpired:
                log.warning("indexer process %s did not end: killed", proc.pid)
                proc.kill()
                proc.wait()
            self._discard()


def _reply(out: IO[str], answer: dict[str, Any]) -> None:
    out.write(orjson.dumps(answer).decode() + "\n")
    out.flush()


def _serve(lines: IO[str], reply: IO[str], home: Path, db_url: str) -> None:
    from playloop.learn.service import Learning

    learning = Learning(home, db_url, flush_seconds=ORPHAN_FLUSH).start()
    indexer = learning.indexer
    assert indexer is not None
    try:
        for raw in lines:
            command, _, argument = raw.strip().partition(" ")
            if command == "wake":
                indexer.wake()
            elif command == "flush":
                done = indexer.flush(float(argument or 10))
                _reply(reply, {"to": "flush", "caught_up": done})
            elif command == "status":
                loaded = learning.model_loaded()
                _reply(
                    reply,
                    {
                        "to": "status",
                        "passes": indexer.passes,
                        "model_loaded": loaded,
                        "pid": os.getpid(),
                    },
                )
            elif command == "close":
                learning.flush_seconds = float(argument or ORPHAN_FLUSH)
                return
    finally:
        learning.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m playloop.learn.indexer_process")
    parser.add_argument("--home", required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    # its engine decides when it ends (Ctrl-C reaches the whole process group)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # answers go to the pipe's own handle; anything else that prints goes to stderr
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=logging.WARNING, format="playloop indexer: %(message)s")
    _serve(sys.stdin, reply, Path(args.home), args.db)


if __name__ == "__main__":
    main()
