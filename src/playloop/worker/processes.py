"""A pool of long-lived child interpreters that run user python code where it can be killed.

Why processes and not threads: a step's timeout must hold even for ``while True: pass``,
and only a process can be stopped from outside. Why long-lived: starting an interpreter
costs tens of milliseconds, a round trip to a warm one tens of microseconds; so children are
started once (lazily, all at once, on first use), reused for every call, and replaced only
when one is killed on a timeout or dies.

The children are plain ``python -P .../playloop/worker/child.py`` processes talking
length-prefixed pickle frames over their stdin/stdout pipes (see ``worker.child``). A new
child first sends an empty frame when its interpreter is up: the call that waited for it
reports that wait (``on_startup``) apart from the code's run, and the call's timeout counts
from then (the start-up has its own bound: the timeout plus ``STARTUP_GRACE``).
``multiprocessing`` is deliberately not used: its spawn start method re-imports the parent's
``__main__`` (the CLI, a test module...) in every child. Nor is the child started as
``-c "from playloop.worker.child import main"``: that imports the ``playloop`` package,
whose ``__init__`` pulls in the whole engine (pydantic, Jinja2...), tens of milliseconds per
start for nothing. Run as a file, the child imports only the standard library.

Each child runs in its own session/process group, so a timeout kills whatever the user code
started too (``subprocess.Popen("sleep 100")`` included), and Ctrl-C in the terminal reaches
only the parent, which then closes the pool.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from playloop.tools.base import ToolError, ToolTimeout

__all__ = ["PoolClosed", "ProcessPool", "PythonRun"]

#: ``-P``: do not put the script's directory (``playloop/worker``) on the child's sys.path
_ARGV = (sys.executable, "-P", str(Path(__file__).resolve().with_name("child.py")))
_HEADER = 8  # bytes of big-endian frame length; must match worker.child.HEADER
_READ_SIZE = 1 << 16
#: how long ``close`` lets an idle child exit on its own before killing it (seconds)
_CLOSE_GRACE = 2.0
_POLL_MASK = select.POLLIN | select.POLLHUP | select.POLLERR
#: how much longer than a call's timeout a new child may take to start (seconds)
STARTUP_GRACE = 30.0


class PoolClosed(RuntimeError):
    """The pool was closed; no more code runs in it."""


class _TimedOut(Exception):
    pass


class _Died(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PythonRun:
    """What one call returned: the result and what the code printed; ``startup``: the
    seconds the call waited for its child interpreter to start (0.0 for a warm child)."""

    result: Any
    logs: str
    pid: int
    startup: float = 0.0


class _Child:
    """One child interpreter and the parent's end of its two pipes."""

    __slots__ = ("_buf", "_poller", "_rfd", "_wfd", "proc", "ready", "spawned")

    def __init__(self) -> None:
        #: when its start began (``time.monotonic()``), and whether it said it is up
        self.spawned = time.monotonic()
        self.ready = False
        self.proc = subprocess.Popen(
            _ARGV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._wfd = self.proc.stdin.fileno()
        self._rfd = self.proc.stdout.fileno()
        self._poller = select.poll()
        self._poller.register(self._rfd, _POLL_MASK)
        self._buf = bytearray()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            view = view[os.write(self._wfd, view) :]

    def await_ready(self, deadline: float | None) -> None:
        """Read the child's ready frame (sent once, when its interpreter is up)."""
        header = self._read_exact(_HEADER, deadline)
        if int.from_bytes(header, "big") != 0:
            raise _Died  # not a child of this protocol
        self.ready = True

    def receive(self, deadline: float | None) -> bytes:
        """One reply frame's body; ``_TimedOut`` past ``deadline``, ``_Died`` on EOF."""
        header = self._read_exact(_HEADER, deadline)
        return self._read_exact(int.from_bytes(header, "big"), deadline)

    def _read_exact(self, n: int, deadline: float | None) -> bytes:
        buf = self._buf
        while len(buf) < n:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                # poll takes milliseconds; round up so we never spin on a sub-ms remainder
                if remaining <= 0 or not self._poller.poll(int(remaining * 1000) + 1):
                    raise _TimedOut
            chunk = os.read(self._rfd, max(n - len(buf), _READ_SIZE))
            if not chunk:
                raise _Died
            buf += chunk
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def signal_kill(self) -> None:
        """SIGKILL the child's whole process group (what the user code started too)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            # already gone (or its group is); make sure the child itself is
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()

    def kill(self) -> int:
        """Kill, reap and release the pipes; returns the exit status."""
        self.signal_kill()
        code = self.proc.wait()
        self._close_pipes()
        return code

    def stop(self, grace: float) -> None:
        """Ask the child to exit (end of its stdin), kill it if it has not after ``grace``."""
        self.close_stdin()
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.signal_kill()
            self.proc.wait()
        else:
            # whatever the user code left running in the background goes with it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._close_pipes()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(OSError):
                    pipe.close()


class ProcessPool:
    """``size`` long-lived child interpreters shared by many threads.

    Each call takes a free child (waiting for one when all are busy), runs the job and gives
    the child back. Thread-safe. Close it (``close()``, ``with ProcessPool(n) as pool``, or
    at interpreter exit through ``atexit``) to stop the children.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a process pool needs at least one process, got {size}")
        self.size = size
        self._cond = threading.Condition(threading.Lock())
        self._idle: list[_Child] = []  # a stack: the most recently used child is warmest
        self._all: set[_Child] = set()
        self._count = 0  # live children plus those being started
        self._closed = False
        atexit.register(self.close)

    # -- public API ---------------------------------------------------------------------

    def run_python(
        self,
        code: str,
        input: Mapping[str, Any] | None = None,
        libs: Sequence[str] | Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run ``code`` in a child and return its result.

        The result is ``main(**input)`` when the code defines a callable ``main``, else its
        variable ``result``, else None. Raises ``ToolTimeout`` past ``timeout`` seconds (the
        child is killed and replaced) and ``ToolError`` typed by the exception class name
        when the code raises (``details["traceback"]``, ``details["logs"]``).
        """
        return self.execute(code, input, libs, timeout).result

    def execute(
        self,
        code: str,
        input: Mapping[str, Any] | None = None,
        libs: Sequence[str] | Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_startup: Callable[[float], None] | None = None,
    ) -> PythonRun:
        """Like ``run_python`` but also returns what the code printed, the child's pid and
        how long the call waited for the child to start. ``on_startup`` is called with that
        wait (seconds) as soon as it is known, also when the code then fails or times out."""
        bindings = dict(input or {})
        lib_spec: list[str] | dict[str, str] | None
        if libs is None:
            lib_spec = None
        elif isinstance(libs, Mapping):
            lib_spec = dict(libs)
        else:
            lib_spec = list(libs)
        try:
            body = pickle.dumps((code, bindings, lib_spec), pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            raise ToolError(f"input cannot be sent to the python process: {e}", "InputError") from e
        frame = len(body).to_bytes(_HEADER, "big") + body
        pid, reply, startup = self._roundtrip(frame, timeout, on_startup)
        return _decode(reply, pid, startup)

    def start(self) -> None:
        """Start the missing children now instead of on first use (they boot in parallel)."""
        with self._cond:
            if self._closed:
                raise PoolClosed("the process pool is closed")
            missing = self.size - self._count
            self._count += missing
        self._add_idle(self._spawn(missing))

    @property
    def pids(self) -> list[int]:
        """The pids of the live children (for diagnostics and tests)."""
        with self._cond:
            return sorted(child.pid for child in self._all)

    def close(self) -> None:
        """Stop every child. Idle ones exit on end of input; busy ones are killed."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle = self._idle
            busy = self._all.difference(idle)
            self._idle = []
            self._all = set()
            self._cond.notify_all()
        atexit.unregister(self.close)
        for child in busy:
            # its caller is blocked reading from it: it gets EOF and reaps the child itself
            child.signal_kill()
        for child in idle:
            child.close_stdin()
        for child in idle:
            child.stop(_CLOSE_GRACE)

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _roundtrip(
        self,
        frame: bytes,
        timeout: float | None,
        on_startup: Callable[[float], None] | None = None,
    ) -> tuple[int, bytes, float]:
        for _ in range(2):
            begun = time.monotonic()
            child = self._acquire()
            try:
                child.send(frame)
            except OSError:
                # the child died while idle; the job never started, so another child may
                # safely run it
                self._discard(child)
                continue
            startup = 0.0
            if not child.ready:
                try:
                    child.await_ready(
                        None if timeout is None else time.monotonic() + timeout + STARTUP_GRACE
                    )
                except _TimedOut:
                    self._discard(child)
                    raise ToolTimeout(timeout if timeout is not None else 0.0) from None
                except _Died:
                    # it died starting: the job never started, another child may run it
                    self._discard(child)
                    continue
                except BaseException:
                    self._discard(child)
                    raise
                # what of its start-up this call waited for (not the queue before it)
                startup = time.monotonic() - max(begun, child.spawned)
                if on_startup is not None:
                    on_startup(startup)
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                reply = child.receive(deadline)
            except _TimedOut:
                self._discard(child)
                raise ToolTimeout(timeout if timeout is not None else 0.0) from None
            except _Died:
                code = self._discard(child)
                if self._closed:
                    raise PoolClosed("the process pool was closed during the call") from None
                raise ToolError(
                    f"the python process died while running the code (exit status {code})",
                    "WorkerDied",
                    details={"exit_status": code},
                ) from None
            except BaseException:
                # interrupted mid-call: the child's state is unknown, do not reuse it
                self._discard(child)
                raise
            self._release(child)
            return child.pid, reply, startup
        raise ToolError("could not send the code to a python process", "WorkerDied")

    def _acquire(self) -> _Child:
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosed("the process pool is closed")
                if self._idle:
                    return self._idle.pop()
                missing = self.size - self._count
                if missing > 0:
                    self._count += missing
                    break
                self._cond.wait()
        # first use (or after a failed replacement): start every missing child, keep one
        children = self._spawn(missing)
        if not children:
            raise ToolError("could not start a python process", "WorkerDied")
        self._add_idle(children[1:])
        with self._cond:
            if self._closed:
                children[0].kill()
                raise PoolClosed("the process pool is closed")
            self._all.add(children[0])
        return children[0]

    def _spawn(self, n: int) -> list[_Child]:
        """Start ``n`` children whose slots the caller reserved in ``_count``."""
        children: list[_Child] = []
        try:
            for _ in range(n):
                children.append(_Child())
        except OSError:
            with self._cond:
                self._count -= n - len(children)
                self._cond.notify_all()
            if not children:
                raise
        return children

    def _add_idle(self, children: list[_Child]) -> None:
        if not children:
            return
        with self._cond:
            if not self._closed:
                self._all.update(children)
                self._idle.extend(children)
                self._cond.notify(len(children))
                return
        for child in children:
            child.kill()

    def _release(self, child: _Child) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(child)
                self._cond.notify()
                return
        child.kill()

    def _discard(self, child: _Child) -> int:
        """Kill a child that cannot be reused and start its replacement right away."""
        code = child.kill()
        with self._cond:
            self._all.discard(child)
            self._count -= 1
            if self._closed:
                return code
            self._count += 1
        # on failure, the next call that finds no idle child tries again
        with contextlib.suppress(OSError):
            self._add_idle(self._spawn(1))
        return code


def _decode(reply: bytes, pid: int, startup: float = 0.0) -> PythonRun:
    message = pickle.loads(reply)
    if message[0] == "ok":
        _, text, logs = message
        return PythonRun(json.loads(text), logs, pid, startup)
    _, exc_type, text, tb, logs, *rest = message
    facts = rest[0] if rest and isinstance(rest[0], dict) else {}
    raise ToolError(
        f"{exc_type}: {text}" if text else exc_type,
        exc_type,
        details={"traceback": tb, "logs": logs, **facts},
    )
