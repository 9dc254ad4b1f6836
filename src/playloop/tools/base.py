"""What every tool kind is: a class with a ``kind`` name, a pydantic ``Config`` and ``run``.

Built-in kinds and third-party kinds register the same way: an entry point in the
``playloop.tools`` group naming the class (see ``tools.registry``). Tools know neither the
store nor playbooks: they get a rendered config, rendered ``input`` bindings and a
``ToolContext``, and return a JSON-serialisable result or raise ``ToolError``.
"""

from __future__ import annotations

import errno as errno_module
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from playloop.worker.processes import ProcessPool


_SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")


class ToolConfig(BaseModel):
    """Base for tool configs: unknown keys are an error, values arrive already rendered."""

    model_config = ConfigDict(extra="forbid")


class ToolError(Exception):
    """The tool failed.

    ``error_type`` is what a retry's ``on: [...]`` list and policy rules match (for example
    ``HTTPError.503``, ``ShellError``, ``TimeoutError``). ``retry_after`` (seconds) is the
    server's ``Retry-After`` when there was one.
    """

    def __init__(
        self,
        message: str,
        error_type: str = "ToolError",
        *,
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.retry_after = retry_after
        self.details = dict(details or {})


class ToolTimeout(ToolError):
    """The step ran past its timeout and was stopped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g}s", "TimeoutError")
        self.seconds = seconds


def error_facts(exc: BaseException) -> dict[str, Any]:
    """The structured facts of an exception and its causes: ``errno`` (a name such as
    ``ECONNREFUSED``), ``sqlstate``, ``status_code``; only those found."""
    facts: dict[str, Any] = {}
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        number = getattr(current, "errno", None)
        if "errno" not in facts and isinstance(number, int) and number in errno_module.errorcode:
            facts["errno"] = errno_module.errorcode[number]
        state = getattr(current, "sqlstate", None)
        if "sqlstate" not in facts and isinstance(state, str) and _SQLSTATE.match(state):
            facts["sqlstate"] = state
        response = getattr(current, "response", None)
        status = getattr(response, "status_code", None)
        if "status_code" not in facts and isinstance(status, int):
            facts["status_code"] = status
        current = current.__cause__ or current.__context__
    return facts


@dataclass(frozen=True, slots=True)
class ChildExecution:
    """Returned by a tool to run another playbook; the step finishes when the child does."""

    path: str
    workload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ToolContext:
    execution_id: int
    step: str
    iteration: int | None
    attempt: int
    timeout: float | None = None
    playbook_file: Path | None = None
    home: Path = Path(".playloop")
    processes: ProcessPool | None = None
    #: receives what user code printed (python ``print`` output); None: logged at INFO
    #: under the ``playloop.tools.<kind>`` logger
    on_output: Callable[[str], None] | None = None
    #: a named credential's decrypted values (``CredentialStore.get``), for tools with an
    #: ``auth:`` field; None: this context resolves no credentials
    credentials: Callable[[str], dict[str, Any]] | None = None
    #: seconds this attempt waited for its runtime to start (a python child interpreter):
    #: recorded as the event's ``meta.startup_ms`` and left out of its ``duration_ms``
    startup: float = 0.0

    def started_up(self, seconds: float) -> None:
        """Record a wait for the tool's runtime to start (see ``startup``)."""
        self.startup += seconds

    @property
    def idempotency_key(self) -> str:
        """Stable across re-runs of the same attempt: tools may use it to dedupe side effects."""
        it = "" if self.iteration is None else str(self.iteration)
        return f"{self.execution_id}:{self.step}:{it}:{self.attempt}"


class Tool:
    """Base class of every tool kind."""

    kind: ClassVar[str] = ""
    Config: ClassVar[type[ToolConfig]] = ToolConfig
    #: config fields that are never rendered as templates (for example python ``code``)
    raw_fields: ClassVar[frozenset[str]] = frozenset()

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        raise NotImplementedError
