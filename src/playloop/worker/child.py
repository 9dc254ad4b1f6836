"""The child side of ``worker.processes``: a long-lived interpreter that runs user python code.

Started by ``ProcessPool`` as ``python -P .../playloop/worker/child.py`` (as a file, so that
the ``playloop`` package and its dependencies are not imported: see ``worker.processes``).
It reads jobs and writes replies as frames (an 8-byte big-endian length, then a pickle) on
private copies of its original stdin/stdout; once started, before its first job, it writes
one empty frame (ready), so the parent can tell its start-up from the first job's run; fd 0 is pointed at ``/dev/null`` and fd 1 at
stderr so that nothing user code does (``print``, ``input()``, ``os.system("echo")``) can
corrupt the protocol channel. ``print`` output is captured per job and returned as logs.

A job is ``(code, input, libs)``; a reply is ``("ok", result_json, logs)`` or
``("error", exc_type_name, message, traceback_text, logs, facts)``. The result travels as JSON text
because it must be JSON anyway: checking it and encoding it are the same ``json.dumps``.

This file runs at every child start, so it imports only what it needs (no pydantic, nothing
from the rest of playloop).
"""

from __future__ import annotations

import _thread
import io
import json
import os
import pickle
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # ``typing`` alone costs a few ms of every child start
    from types import CodeType, TracebackType
    from typing import Any, NoReturn

HEADER = 8
#: how often the orphan watchdog checks that the parent is still alive (seconds)
_WATCH_INTERVAL = 1.0
#: compiled code objects kept per process (keyed by source text)
_MAX_CODE_CACHE = 1024

_code_cache: dict[str, CodeType] = {}
_sources: dict[str, str] = {}  # filename -> source, for tracebacks
_libs_cache: dict[Any, dict[str, Any]] = {}
_compiled = 0


class ResultError(Exception):
    """The code's result cannot be returned (it is not JSON-serialisable)."""


class _Unserialisable(TypeError):
    def __init__(self, obj: object) -> None:
        cls = type(obj)
        name = (
            cls.__qualname__
            if cls.__module__ == "builtins"
            else f"{cls.__module__}.{cls.__qualname__}"
        )
        super().__init__(name)
        self.type_name = name


def _default(obj: object) -> NoReturn:
    raise _Unserialisable(obj)


def _compile(code: str) -> CodeType:
    global _compiled
    compiled = _code_cache.get(code)
    if compiled is None:
        if len(_code_cache) >= _MAX_CODE_CACHE:
            _code_cache.clear()
            _sources.clear()
        _compiled += 1
        filename = f"<python step #{_compiled}>"
        compiled = compile(code, filename, "exec")
        _code_cache[code] = compiled
        _sources[filename] = code
    return compiled


def _libs(libs: Any) -> dict[str, Any]:
    """The bindings for ``libs``: ``[a.b, c]`` binds ``a`` and ``c``; ``{alias: module}``."""
    if not libs:
        return {}
    key = tuple(sorted(libs.items())) if isinstance(libs, dict) else tuple(libs)
    bound = _libs_cache.get(key)
    if bound is None:
        import importlib

        bound = {}
        if isinstance(libs, dict):
            for alias, module in libs.items():
                bound[alias] = importlib.import_module(module)
        else:
            for module in libs:
                importlib.import_module(module)
                top = module.partition(".")[0]
                bound[top] = sys.modules[top]
        _libs_cache[key] = bound
    return bound


_CO_VARKEYWORDS = 0x08


def _accepted(func: Any, input: dict[str, Any]) -> dict[str, Any]:
    """The ``input`` bindings ``func`` can take as keywords: all of them when it has
    ``**kwargs`` (or is not a plain function), else those it names.

    Every binding is a variable of the code anyway, so ``def main(rows): ...`` works in a step
    that also binds other values.
    """
    code = getattr(func, "__code__", None)
    if code is None or code.co_flags & _CO_VARKEYWORDS:
        return input
    names = code.co_varnames[code.co_posonlyargcount : code.co_argcount + code.co_kwonlyargcount]
    return {k: v for k, v in input.items() if k in names}


def _format_traceback(exc: BaseException) -> str:
    import linecache
    import traceback

    for filename, source in _sources.items():
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    # drop the frames of this module: the user cares about their code only
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _safe_traceback(exc: BaseException) -> str:
    try:
        return _format_traceback(exc)
    except Exception:
        return ""


def _facts(exc: BaseException) -> dict[str, Any]:
    """What the parent classifies the error by: errno name, SQLSTATE, HTTP status (the
    first found along the exception's causes). Mirrors ``tools.base.error_facts``, which
    this module cannot import."""
    import errno as errno_module

    facts: dict[str, Any] = {}
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        number = getattr(current, "errno", None)
        if "errno" not in facts and isinstance(number, int) and number in errno_module.errorcode:
            facts["errno"] = errno_module.errorcode[number]
        state = getattr(current, "sqlstate", None)
        if "sqlstate" not in facts and isinstance(state, str) and len(state) == 5:
            facts["sqlstate"] = state
        status = getattr(getattr(current, "response", None), "status_code", None)
        if "status_code" not in facts and isinstance(status, int):
            facts["status_code"] = status
        current = current.__cause__ or current.__context__
    return facts


def run_job(code: str, input: dict[str, Any], libs: Any) -> tuple[Any, ...]:
    """Run one job and build its reply (never raises for errors in user code)."""
    logs = io.StringIO()
    saved_stdout = sys.stdout
    sys.stdout = logs
    try:
        compiled = _compile(code)
        namespace: dict[str, Any] = {"__name__": "__playloop_step__", "__builtins__": __builtins__}
        namespace.update(_libs(libs))
        namespace.update(input)
        exec(compiled, namespace)
        entry = namespace.get("main")
        result = entry(**_accepted(entry, input)) if callable(entry) else namespace.get("result")
        try:
            text = json.dumps(result, default=_default)
        except _Unserialisable as e:
            raise ResultError(
                f"result is not JSON-serialisable: a value of type '{e.type_name}'"
            ) from None
        except (TypeError, ValueError) as e:
            raise ResultError(f"result is not JSON-serialisable: {e}") from None
    except BaseException as exc:  # user code may raise anything, SystemExit included
        sys.stdout = saved_stdout
        try:
            message = str(exc)
        except Exception:
            message = "<unprintable exception>"
        # a ResultError's traceback would only show this module
        tb_text = "" if isinstance(exc, ResultError) else _safe_traceback(exc)
        return ("error", type(exc).__name__, message, tb_text, logs.getvalue(), _facts(exc))
    finally:
        sys.stdout = saved_stdout
    return ("ok", text, logs.getvalue())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _watch_parent(parent: int) -> None:
    """Kill this process (and its process group) if the parent dies while code is running.

    An idle child notices a dead parent by the end of its stdin, but code stuck in
    ``while True: pass`` never reads again; this thread makes sure it does not outlive us.
    """
    while True:
        time.sleep(_WATCH_INTERVAL)
        if os.getppid() != parent:
            if os.getpgrp() == os.getpid():
                os.killpg(os.getpid(), signal.SIGKILL)
            os._exit(1)


def main() -> None:
    # the parent owns our life cycle; Ctrl-C in its terminal is its business, not ours
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    _thread.start_new_thread(_watch_parent, (os.getppid(),))
    loads, dumps, protocol = pickle.loads, pickle.dumps, pickle.HIGHEST_PROTOCOL
    _write_all(proto_out, bytes(HEADER))  # ready: an empty frame
    with open(proto_in, "rb", buffering=1 << 16) as reader:
        while True:
            header = reader.read(HEADER)
            if len(header) < HEADER:
                break  # the parent closed the pipe: we are done
            body = reader.read(int.from_bytes(header, "big"))
            code, input, libs = loads(body)
            reply = dumps(run_job(code, input, libs), protocol)
            _write_all(proto_out, len(reply).to_bytes(HEADER, "big") + reply)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
