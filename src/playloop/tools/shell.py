"""``shell``: commands in a killable process group; a non-zero exit is an error with stderr."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from functools import cache
from typing import Any

from pydantic import Field

from playloop.tools._util import resolve_path
from playloop.tools.base import Tool, ToolConfig, ToolContext, ToolError, ToolTimeout

#: how much of stderr a ShellError message quotes
_STDERR_TAIL = 2000
#: after a kill, how long to wait for the pipes to drain before giving up on them (seconds)
_DRAIN_AFTER_KILL = 2.0


class ShellConfig(ToolConfig):
    cmds: list[str] | str
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


@cache
def _shell() -> str:
    return shutil.which("bash") or "/bin/sh"


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _tail(text: str, limit: int = _STDERR_TAIL) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _parse_json(stdout: str) -> Any:
    text = stdout.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


class ShellTool(Tool):
    """Runs ``cmds`` with bash (``/bin/sh`` when there is no bash).

    A string is one script, its exit status the step's. A list is joined with newlines and
    runs with ``set -e``: like a CI job's ``script:`` list, the first failing command stops
    it. ``input`` bindings are exported as environment variables named exactly as bound
    (non-string values JSON-encoded), under ``env`` which wins on a clash. The commands
    run in their own process group so a timeout kills everything they started.
    Result: ``{stdout, stderr, exit_code, data}`` with ``data`` the stdout parsed as JSON
    when it is JSON, else None.
    """

    kind = "shell"
    Config = ShellConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        if isinstance(config.cmds, str):
            argv = [_shell(), "-c", config.cmds]
        else:
            argv = [_shell(), "-e", "-c", "\n".join(config.cmds)]
        env = dict(os.environ)
        env.update({name: _env_value(value) for name, value in input.items()})
        env.update(config.env)
        cwd = resolve_path(config.cwd, ctx) if config.cwd else None
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except (OSError, ValueError) as e:
            raise ToolError(f"could not start the shell: {e}", "ShellError") from e
        with proc:
            try:
                out, err = proc.communicate(timeout=ctx.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise ToolTimeout(ctx.timeout or 0.0) from None
            except BaseException:
                _kill_group(proc)
                raise
        stdout = out.decode("utf-8", errors="replace")
        stderr = err.decode("utf-8", errors="replace")
        code = proc.returncode
        if code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            tail = _tail(stderr) or _tail(stdout)
            raise ToolError(
                f"shell command {how}" + (f": {tail}" if tail else ""),
                "ShellError",
                details={"exit_code": code, "stdout": _tail(stdout), "stderr": _tail(stderr)},
            )
        return {"stdout": stdout, "stderr": stderr, "exit_code": code, "data": _parse_json(stdout)}


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the commands' process group, then reap the shell and drain its pipes.

    Something that left the group (``setsid``) may still hold the pipes open; we do not wait
    for it past ``_DRAIN_AFTER_KILL``.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=_DRAIN_AFTER_KILL)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
