"""Commands: the work an execution asks for (run a step, fire a timer), queued with events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: "run" and "notify" go to a worker; every other kind is a timer the engine itself fires
CommandKind = Literal["run", "notify", "timer", "deadline", "remind", "escalate"]
#: the kinds a worker executes (and reports on with an ``Outcome``)
WORKER_KINDS = frozenset({"run", "notify"})


@dataclass(slots=True)
class Command:
    """One unit of queued work.

    ``(execution_id, step, iteration, attempt, kind)`` is the idempotency key: a command is
    created once, may be claimed several times (a crashed worker's lease expires), and is
    deleted in the same transaction that records its outcome.
    """

    execution_id: int
    kind: CommandKind
    step: str
    attempt: int
    iteration: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    not_before: float | None = None
    pool: str | None = None
    command_id: int = 0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    started_event_id: int | None = None
    #: how many times a worker has taken this command (more than one: it was re-claimed)
    claims: int = 0

    @property
    def key(self) -> str:
        it = "" if self.iteration is None else str(self.iteration)
        return f"{self.execution_id}:{self.step}:{it}:{self.attempt}:{self.kind}"
