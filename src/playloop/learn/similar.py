"""Similar past failures (with what resolved them) and playbooks found by meaning.

``similar_failures(index, text, ...)`` and ``search_playbooks(index, text, ...)`` read the
vector index the indexer keeps (``playloop.learn.indexer``); they never write it.
``FailureLookup`` is the worker's side: when a step fails, it finds the best matches within
a tight time budget and the worker attaches them to the failure event's ``meta.similar``.

Nothing heavy is imported here: the CLI's ``playloop similar`` must start fast.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from playloop.learn.documents import FAILURES, PLAYBOOKS, failure_query

if TYPE_CHECKING:
    from playloop.learn.vectors import Hit, VectorIndex

__all__ = [
    "FailureLookup",
    "Match",
    "PlaybookMatch",
    "search_playbooks",
    "similar_failures",
]

log = logging.getLogger("playloop.learn")

#: a failure's top matches attached to its event (``meta.similar``)
ATTACH_K = 3
#: the least score a match needs to be attached to a failure event
ATTACH_MIN_SCORE = 0.5
#: how long a failing step's report may wait for its matches (then it goes without);
#: ``PLAYLOOP_SIMILAR_BUDGET_MS`` overrides
ATTACH_BUDGET_SECONDS = 0.05


def attach_budget() -> float:
    configured = os.environ.get("PLAYLOOP_SIMILAR_BUDGET_MS")
    if configured and configured.strip().isdigit():
        return int(configured) / 1000
    return ATTACH_BUDGET_SECONDS


@dataclass(frozen=True, slots=True)
class Match:
    """A past failure like the one asked about, and what resolved it."""

    event_id: str
    execution_id: str
    playbook: str
    step: str | None
    tool: str | None
    error_type: str | None
    error: str
    created_at: str | None
    score: float
    resolutions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_hit(cls, hit: Hit) -> Match:
        p = hit.payload
        return cls(
            event_id=str(p.get("event_id") or hit.id),
            execution_id=str(p.get("execution_id") or ""),
            playbook=str(p.get("playbook") or ""),
            step=p.get("step"),
            tool=p.get("tool"),
            error_type=p.get("error_type"),
            error=str(p.get("error") or ""),
            created_at=p.get("created_at"),
            score=round(float(hit.score), 4),
            resolutions=list(p.get("resolution") or []),
        )

    @property
    def resolution(self) -> str | None:
        """The latest resolution in words ("retry: attempt 2 of step 'x' succeeded")."""
        if not self.resolutions:
            return None
        last = self.resolutions[-1]
        return f"{last.get('kind')}: {last.get('note')}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "execution_id": self.execution_id,
            "playbook": self.playbook,
            "step": self.step,
            "tool": self.tool,
            "error_type": self.error_type,
            "error": self.error,
            "created_at": self.created_at,
            "score": self.score,
            "resolved": bool(self.resolutions),
            "resolution": self.resolution,
            "resolutions": self.resolutions,
        }

    def brief(self) -> dict[str, Any]:
        """What a failure event's ``meta.similar`` holds for this match."""
        return {
            "event_id": self.event_id,
            "playbook": self.playbook,
            "step": self.step,
            "error": self.error[:300],
            "score": self.score,
            "resolution": self.resolution,
        }


@dataclass(frozen=True, slots=True)
class PlaybookMatch:
    path: str
    name: str
    version: int | None
    description: str
    steps: list[str]
    tools: list[str]
    score: float

    @classmethod
    def from_hit(cls, hit: Hit) -> PlaybookMatch:
        p = hit.payload
        version = p.get("version")
        return cls(
            path=str(p.get("path") or ""),
            name=str(p.get("name") or ""),
            version=int(version) if isinstance(version, int) else None,
            description=str(p.get("description") or ""),
            steps=list(p.get("steps") or []),
            tools=list(p.get("tools") or []),
            score=round(float(hit.score), 4),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "steps": self.steps,
            "tools": self.tools,
            "score": self.score,
        }


def similar_failures(
    index: VectorIndex,
    text: str,
    *,
    k: int = 5,
    min_score: float = 0.0,
    playbook: str | None = None,
    exclude_event: int | None = None,
    exclude_execution: int | None = None,
) -> list[Match]:
    """Past failures like ``text`` (an error message, or a failure's indexed text), best
    first, each with its resolutions; ``exclude_*`` leave out the failure asked about."""
    where = {"playbook": playbook} if playbook else None
    extra = 1 if exclude_event is not None else 0
    if exclude_execution is not None:
        extra = k  # a failing run's own earlier attempts may fill the first places
    hits = index.search(FAILURES, text, k=k + extra, min_score=min_score, where=where)
    out = []
    for hit in hits:
        if exclude_event is not None and hit.id == exclude_event:
            continue
        if exclude_execution is not None and str(hit.payload.get("execution_id")) == str(
            exclude_execution
        ):
            continue
        out.append(Match.from_hit(hit))
    return out[:k]


def search_playbooks(
    index: VectorIndex, text: str, *, k: int = 5, min_score: float = 0.0
) -> list[PlaybookMatch]:
    """Catalog playbooks whose description, steps and tools are like ``text``, best first."""
    return [
        PlaybookMatch.from_hit(h) for h in index.search(PLAYBOOKS, text, k=k, min_score=min_score)
    ]


class FailureLookup:
    """The matches of a failure a worker is reporting, within ``budget`` seconds.

    The query runs on one helper thread: the reporting thread waits at most ``budget`` and
    goes without matches when the answer is late, the index cannot be had, or the helper
    is still busy with an earlier failure (failures in a burst do not queue up). ``index``
    is a callable giving the open index, or None (not ready: skip); it is called on the
    helper thread, so it may open the index and the query may load the embedding model:
    the first failure of a process then goes without, and the next ones find the model
    loaded and the query vectors of repeated errors cached.
    """

    def __init__(
        self,
        index: Callable[[], VectorIndex | None],
        *,
        budget: float | None = None,
        k: int = ATTACH_K,
        min_score: float = ATTACH_MIN_SCORE,
    ) -> None:
        self._index = index
        self.budget = attach_budget() if budget is None else budget
        self.k = k
        self.min_score = min_score
        self._busy = threading.Lock()
        self.stats = {"attached": 0, "none": 0, "late": 0, "busy": 0, "not_ready": 0}

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no lookup is running (True), or ``timeout`` seconds."""
        if not self._busy.acquire(timeout=timeout):
            return False
        self._busy.release()
        return True

    def __call__(
        self,
        *,
        execution_id: int,
        step: str,
        tool: str | None,
        error_type: str | None,
        message: str,
        config: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]] | None:
        if not self._busy.acquire(blocking=False):
            self.stats["busy"] += 1
            return None
        text = failure_query(
            error_type=error_type, message=message, step=step, tool=tool, config=config
        )
        future: Future[list[Match] | None] = Future()

        def run() -> None:
            try:
                index = self._index()
                future.set_result(
                    None
                    if index is None
                    else similar_failures(
                        index,
                        text,
                        k=self.k,
                        min_score=self.min_score,
                        exclude_execution=execution_id,
                    )
                )
            except BaseException as exc:
                future.set_exception(exc)
            finally:
                self._busy.release()

        started = time.perf_counter()
        threading.Thread(target=run, name="playloop-similar", daemon=True).start()
        try:
            matches = future.result(timeout=self.budget)
        except TimeoutError:
            self.stats["late"] += 1
            return None
        except Exception:
            log.debug("similar failures lookup failed", exc_info=True)
            return None
        log.debug("similar failures in %.1f ms", (time.perf_counter() - started) * 1000)
        if matches is None:
            self.stats["not_ready"] += 1
            return None
        if not matches:
            self.stats["none"] += 1
            return None
        self.stats["attached"] += 1
        return [m.brief() for m in matches]
