"""The process pool: long-lived children, killable on timeout, safe for many threads."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from playloop.tools.base import ToolError, ToolTimeout
from playloop.worker.processes import PoolClosed, ProcessPool


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPool]:
    with ProcessPool(2) as p:
        yield p


@pytest.fixture
def fresh_pool() -> Iterator[ProcessPool]:
    """A pool of its own, for tests that kill children."""
    with ProcessPool(2) as p:
        yield p


def _dead(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (a killed orphan's fate in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_result_variable(pool: ProcessPool) -> None:
    assert pool.run_python("result = {'a': [1, 2.5, None, True, 'x']}") == {
        "a": [1, 2.5, None, True, "x"]
    }


def test_no_result_is_none(pool: ProcessPool) -> None:
    assert pool.run_python("x = 1") is None


def test_input_bindings_are_variables(pool: ProcessPool) -> None:
    assert pool.run_python("result = a * b", {"a": 6, "b": 7}) == 42


def test_main_is_called_with_input(pool: ProcessPool) -> None:
    code = "def main(name, n):\n    return f'{name}:{n + 1}'\nresult = 'ignored'\n"
    assert pool.run_python(code, {"name": "x", "n": 1}) == "x:2"


def test_functions_see_module_level_names(pool: ProcessPool) -> None:
    code = "K = 10\ndef helper(v):\n    return v * K\ndef main(v):\n    return helper(v)\n"
    assert pool.run_python(code, {"v": 3}) == 30


def test_namespace_is_fresh_per_call(pool: ProcessPool) -> None:
    pool.run_python("leftover = 1\nresult = None")
    with pytest.raises(ToolError) as info:
        pool.run_python("result = leftover")
    assert info.value.error_type == "NameError"


def test_result_is_json_normalised(pool: ProcessPool) -> None:
    assert pool.run_python("result = {'t': (1, 2), 1: 'k'}") == {"t": [1, 2], "1": "k"}


def test_libs_list_and_mapping(pool: ProcessPool) -> None:
    assert pool.run_python("result = math.sqrt(x)", {"x": 16}, ["math"]) == 4.0
    assert pool.run_python("result = p.join('a', 'b')", {}, {"p": "posixpath"}) == "a/b"
    assert pool.run_python("result = os.path.basename('/x/y')", {}, ["os.path"]) == "y"


def test_unknown_lib_is_an_error(pool: ProcessPool) -> None:
    with pytest.raises(ToolError) as info:
        pool.run_python("result = 1", {}, ["no_such_module_hopefully"])
    assert info.value.error_type == "ModuleNotFoundError"


def test_prints_are_captured_and_do_not_corrupt_the_channel(pool: ProcessPool) -> None:
    code = (
        "import os, sys\n"
        "print('hello', x)\n"
        "print('to stderr', file=sys.stderr)\n"
        "os.write(1, b'raw bytes on fd 1\\n')\n"
        "sys.stdout.write('more\\n')\n"
        "result = x\n"
    )
    run = pool.execute(code, {"x": 5})
    assert run.result == 5
    assert run.logs == "hello 5\nmore\n"
    # the channel still works
    assert pool.run_python("result = 'ok'") == "ok"


def test_input_builtin_does_not_read_the_protocol(pool: ProcessPool) -> None:
    with pytest.raises(ToolError) as info:
        pool.run_python("result = input()")
    assert info.value.error_type == "EOFError"
    assert pool.run_python("result = 1") == 1


def test_user_exception_type_message_and_traceback(pool: ProcessPool) -> None:
    code = "def main():\n    print('before')\n    raise ValueError('bad value')\n"
    with pytest.raises(ToolError) as info:
        pool.run_python(code)
    err = info.value
    assert err.error_type == "ValueError"
    assert err.message == "ValueError: bad value"
    assert "raise ValueError('bad value')" in err.details["traceback"]
    assert "playloop/worker/child.py" not in err.details["traceback"]
    assert err.details["logs"] == "before\n"


def test_custom_exception_class(pool: ProcessPool) -> None:
    code = "class QualityError(Exception):\n    pass\nraise QualityError('score 0.4')\n"
    with pytest.raises(ToolError) as info:
        pool.run_python(code)
    assert info.value.error_type == "QualityError"
    assert info.value.message == "QualityError: score 0.4"


def test_syntax_error(pool: ProcessPool) -> None:
    with pytest.raises(ToolError) as info:
        pool.run_python("x = (")
    assert info.value.error_type == "SyntaxError"


def test_sys_exit_does_not_kill_the_child(pool: ProcessPool) -> None:
    with pytest.raises(ToolError) as info:
        pool.run_python("import sys\nsys.exit(3)")
    assert info.value.error_type == "SystemExit"
    assert pool.run_python("result = 2") == 2


@pytest.mark.parametrize(
    ("code", "type_name"),
    [("result = {1, 2}", "'set'"), ("import decimal\nresult = decimal.Decimal(1)", "decimal")],
)
def test_non_serialisable_result(pool: ProcessPool, code: str, type_name: str) -> None:
    with pytest.raises(ToolError) as info:
        pool.run_python(code)
    assert info.value.error_type == "ResultError"
    assert "not JSON-serialisable" in info.value.message
    assert type_name in info.value.message


def test_same_process_is_reused(pool: ProcessPool) -> None:
    pids = {pool.run_python("import os\nresult = os.getpid()") for _ in range(20)}
    assert pids <= set(pool.pids)
    assert len(pool.pids) == 2
    assert os.getpid() not in pids


def test_code_is_compiled_once_per_process(pool: ProcessPool) -> None:
    code = "import os, sys\nresult = [os.getpid(), id(sys._getframe().f_code)]\n"
    seen: dict[int, set[int]] = {}
    for _ in range(10):
        pid, code_id = pool.run_python(code)
        seen.setdefault(pid, set()).add(code_id)
    assert all(len(ids) == 1 for ids in seen.values())


def test_infinite_loop_is_killed_and_replaced(fresh_pool: ProcessPool) -> None:
    fresh_pool.start()
    before = set(fresh_pool.pids)
    started = time.monotonic()
    with pytest.raises(ToolTimeout) as info:
        fresh_pool.run_python("import os\nwhile True:\n    pass\n", timeout=2)
    elapsed = time.monotonic() - started
    assert 1.9 < elapsed < 3.0
    assert info.value.error_type == "TimeoutError"
    assert info.value.seconds == 2
    after = set(fresh_pool.pids)
    assert len(after) == 2
    killed = before - after
    assert len(killed) == 1
    assert _dead(next(iter(killed)))
    # the pool still works, on the survivor and on the replacement
    results = {fresh_pool.run_python("import os\nresult = os.getpid()") for _ in range(10)}
    assert results <= after
    with ThreadPoolExecutor(2) as ex:
        two = set(
            ex.map(
                lambda _: fresh_pool.run_python(
                    "import os, time\ntime.sleep(0.2)\nresult = os.getpid()"
                ),
                range(2),
            )
        )
    assert two == after


def test_timeout_kills_what_the_code_started(fresh_pool: ProcessPool) -> None:
    code = (
        "import subprocess, time\n"
        "p = subprocess.Popen(['sleep', '30'])\n"
        "print(p.pid, flush=True)\n"
        "open(path, 'w').write(str(p.pid))\n"
        "time.sleep(30)\n"
    )
    path = f"/tmp/playloop-test-grandchild-{os.getpid()}"
    with pytest.raises(ToolTimeout):
        fresh_pool.run_python(code, {"path": path}, timeout=1)
    with open(path) as f:
        grandchild = int(f.read())
    os.unlink(path)
    deadline = time.monotonic() + 2
    while not _dead(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _dead(grandchild)


def test_dead_child_is_replaced(fresh_pool: ProcessPool) -> None:
    with pytest.raises(ToolError) as info:
        fresh_pool.run_python("import os\nos._exit(7)")
    assert info.value.error_type == "WorkerDied"
    assert "7" in info.value.message
    assert len(fresh_pool.pids) == 2
    assert fresh_pool.run_python("result = 'alive'") == "alive"


def test_child_killed_while_idle_is_replaced_transparently(fresh_pool: ProcessPool) -> None:
    fresh_pool.start()
    for pid in fresh_pool.pids:
        os.kill(pid, 9)
    time.sleep(0.1)
    assert fresh_pool.run_python("result = 1") == 1


def test_concurrent_calls_from_eight_threads(pool: ProcessPool) -> None:
    code = "import os\ndef main(i):\n    return {'i': i, 'sq': i * i, 'pid': os.getpid()}\n"
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda i: pool.run_python(code, {"i": i}, timeout=10), range(400)))
    assert [r["sq"] for r in results] == [i * i for i in range(400)]
    assert {r["pid"] for r in results} <= set(pool.pids)


def test_calls_wait_for_a_free_process(fresh_pool: ProcessPool) -> None:
    started = time.monotonic()
    barrier = threading.Barrier(4)

    def call(_: int) -> float:
        barrier.wait()
        return float(fresh_pool.run_python("import time\ntime.sleep(0.3)\nresult = 1"))

    with ThreadPoolExecutor(4) as ex:
        assert list(ex.map(call, range(4))) == [1.0] * 4
    # 4 calls of 0.3 s on 2 processes: two rounds
    assert 0.55 < time.monotonic() - started < 2.5
    assert len(fresh_pool.pids) == 2


def test_timeout_does_not_count_queueing(fresh_pool: ProcessPool) -> None:
    with ThreadPoolExecutor(3) as ex:
        futures = [
            ex.submit(
                fresh_pool.run_python, "import time\ntime.sleep(0.4)\nresult = 1", None, None, 0.7
            )
            for _ in range(3)
        ]
        assert [f.result() for f in futures] == [1, 1, 1]


def _slow_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Children started from now on take ``seconds`` more to start (a sitecustomize)."""
    (tmp_path / "sitecustomize.py").write_text(f"import time\ntime.sleep({seconds})\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


def test_the_wait_for_a_new_child_is_reported_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_start(tmp_path, monkeypatch, 0.4)
    waits: list[float] = []
    with ProcessPool(1) as pool:
        cold = pool.execute("result = 1", on_startup=waits.append)
        warm = pool.execute("result = 2", on_startup=waits.append)
        assert cold.startup >= 0.35 and waits == [cold.startup]
        assert warm.startup == 0.0 and len(waits) == 1
        # a child replaced after a failure that killed it: the next call waits again,
        # and the wait is reported even when the code then fails
        with pytest.raises(ToolTimeout):
            pool.execute("while True: pass", timeout=0.5)
        with pytest.raises(ToolError):
            pool.execute("raise ValueError('x')", on_startup=waits.append)
        assert len(waits) == 2 and waits[1] > 0


def test_the_timeout_counts_from_the_child_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new child that takes longer to start than the step's timeout does not time it out:
    the timeout bounds the code's run."""
    _slow_start(tmp_path, monkeypatch, 0.6)
    with ProcessPool(1) as pool:
        assert pool.run_python("result = 1", timeout=0.3) == 1
        with pytest.raises(ToolTimeout):
            pool.run_python("import time\ntime.sleep(2)", timeout=0.3)


def test_lazy_start_and_close(fresh_pool: ProcessPool) -> None:
    assert fresh_pool.pids == []
    fresh_pool.run_python("result = 1")
    pids = fresh_pool.pids
    assert len(pids) == 2  # all started on first use
    fresh_pool.close()
    assert fresh_pool.pids == []
    for pid in pids:
        assert _dead(pid)
    with pytest.raises(PoolClosed):
        fresh_pool.run_python("result = 1")
    fresh_pool.close()  # idempotent


def test_close_kills_busy_children() -> None:
    pool = ProcessPool(1)
    errors: list[BaseException] = []

    def busy() -> None:
        try:
            pool.run_python("while True:\n    pass\n")
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=busy)
    t.start()
    deadline = time.monotonic() + 5
    while not pool.pids and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    pool.close()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], PoolClosed)


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ProcessPool(0)


def test_unpicklable_input_is_a_clear_error(pool: ProcessPool) -> None:
    with pytest.raises(ToolError) as info:
        pool.run_python("result = 1", {"f": lambda: 1})
    assert info.value.error_type == "InputError"


def test_large_payloads(pool: ProcessPool) -> None:
    blob = "x" * 3_000_000
    assert pool.run_python("result = len(s) + len(s * 0)", {"s": blob}) == 3_000_000
    assert len(pool.run_python("result = 'y' * 2_000_000")) == 2_000_000


def test_round_trip_is_fast(pool: ProcessPool) -> None:
    """A guard against per-call interpreter starts or imports, with ample room for noise.

    The target is ~0.1 ms per trivial call on a 2-core machine; an interpreter start is
    ~20 ms, so a 2 ms mean still catches that kind of regression.
    """
    code = "result = x + 1"
    for i in range(200):
        pool.run_python(code, {"x": i}, timeout=5)
    n = 1000
    started = time.perf_counter()
    for i in range(n):
        assert pool.run_python(code, {"x": i}, timeout=5) == i + 1
    assert (time.perf_counter() - started) / n < 0.002


def test_main_takes_only_the_bindings_it_names(pool: ProcessPool) -> None:
    code = "def main(a):\n    return [a, b]\n"
    assert pool.run_python(code, {"a": 1, "b": 2}) == [1, 2]
    assert pool.run_python("def main(**kw):\n    return sorted(kw)\n", {"x": 1, "y": 2}) == [
        "x",
        "y",
    ]
    with pytest.raises(ToolError) as info:
        pool.run_python("def main(a, missing):\n    return a\n", {"a": 1})
    assert info.value.error_type == "TypeError"
