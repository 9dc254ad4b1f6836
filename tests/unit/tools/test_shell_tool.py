"""The ``shell`` tool: exit codes, stderr, env, cwd, JSON stdout, timeouts killing the group."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from playloop.tools.base import ToolContext, ToolError, ToolTimeout
from playloop.tools.shell import ShellConfig, ShellTool


def _ctx(**kw: object) -> ToolContext:
    return ToolContext(execution_id=1, step="sh", iteration=None, attempt=1, **kw)  # type: ignore[arg-type]


def _dead(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def run(
    cmds: str | list[str], input: dict[str, object] | None = None, **kw: object
) -> dict[str, object]:
    ctx_kw = {k: kw.pop(k) for k in ("timeout", "playbook_file") if k in kw}
    config = ShellConfig.model_validate({"cmds": cmds, **kw})
    result = ShellTool().run(config, dict(input or {}), _ctx(**ctx_kw))
    assert isinstance(result, dict)
    return result


def test_stdout_stderr_exit_code() -> None:
    out = run("echo hello; echo oops >&2")
    assert out == {"stdout": "hello\n", "stderr": "oops\n", "exit_code": 0, "data": None}


def test_json_stdout_is_parsed() -> None:
    assert run("""echo '{"rows": 3, "ok": true}'""")["data"] == {"rows": 3, "ok": True}
    assert run("echo 'not json'")["data"] is None


def test_list_of_commands_joined_with_newlines() -> None:
    assert run(["X=1", "echo $X", "echo two"])["stdout"] == "1\ntwo\n"


def test_list_stops_at_the_first_failure() -> None:
    with pytest.raises(ToolError) as info:
        run(["echo first", "false", "echo never"])
    assert info.value.details["exit_code"] == 1
    assert "never" not in info.value.details["stdout"]


def test_non_zero_exit_is_a_shell_error_with_stderr_tail() -> None:
    with pytest.raises(ToolError) as info:
        run("echo partial; echo 'disk full' >&2; exit 3")
    err = info.value
    assert err.error_type == "ShellError"
    assert "exited with code 3" in err.message
    assert "disk full" in err.message
    assert err.details["exit_code"] == 3
    assert err.details["stdout"] == "partial"


def test_long_stderr_is_cut_to_its_tail() -> None:
    with pytest.raises(ToolError) as info:
        run("for i in $(seq 1 2000); do echo line-$i >&2; done; exit 1")
    assert "line-2000" in info.value.message
    assert "line-1\n" not in info.value.message
    assert len(info.value.message) < 2200


def test_env_and_input_bindings() -> None:
    out = run(
        'echo "$greeting|$count|$cfg|$EXTRA|$HOME_SEEN"',
        {"greeting": "hi there", "count": 3, "cfg": {"a": [1]}},
        env={"EXTRA": "x", "HOME_SEEN": os.environ.get("HOME", "")},
    )
    assert out["stdout"] == f'hi there|3|{{"a": [1]}}|x|{os.environ.get("HOME", "")}\n'


def test_env_wins_over_input() -> None:
    assert run("echo $V", {"V": "from-input"}, env={"V": "from-env"})["stdout"] == "from-env\n"


def test_os_environ_is_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYLOOP_TEST_INHERITED", "yes")
    assert run("echo $PLAYLOOP_TEST_INHERITED")["stdout"] == "yes\n"


def test_cwd_absolute_and_relative_to_the_playbook(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert run("pwd", cwd=str(tmp_path))["stdout"] == f"{tmp_path}\n"
    playbook = tmp_path / "pb.yaml"
    assert run("pwd", cwd="sub", playbook_file=playbook)["stdout"] == f"{tmp_path / 'sub'}\n"


def test_missing_cwd_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as info:
        run("pwd", cwd=str(tmp_path / "nope"))
    assert info.value.error_type == "ShellError"


def test_timeout_kills_the_whole_group_fast(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(ToolTimeout) as info:
        run(f"sleep 30 & echo $! > {pidfile}; sleep 30", timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert info.value.error_type == "TimeoutError"
    background = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while not _dead(background) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _dead(background), "the background sleep survived the timeout"


def test_plain_sleep_is_killed_well_under_three_seconds() -> None:
    started = time.monotonic()
    with pytest.raises(ToolTimeout):
        run("sleep 30", timeout=1)
    assert time.monotonic() - started < 2.0


def test_killed_by_signal() -> None:
    with pytest.raises(ToolError, match="killed by signal 9"):
        run("kill -9 $$")
