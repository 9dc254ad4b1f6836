"""What a draft is grounded in: similar catalog playbooks and how their steps fared.

A ``Retriever`` finds catalog paths similar to a description (the vector index's
``playbooks`` collection; a word-overlap fallback when there is no index). For each hit the
catalog's latest YAML is read and each step is paired with its outcomes in the event log
(``generate_step_outcomes``: runs finished and failed), so the composer and the LLM prefer
the steps that worked.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from playloop.store.base import EventStore

try:
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader  # type: ignore[assignment]
from playloop.store.generic import fetch

__all__ = [
    "Example",
    "Grounding",
    "LexicalRetriever",
    "Retriever",
    "SafeLoader",
    "StepRecord",
    "ground",
    "playbook_text",
]


class Retriever(Protocol):
    """Finds catalog playbooks similar to a text: ``[(path, score)]``, best first."""

    name: str

    def similar(self, text: str, k: int) -> list[tuple[str, float]]: ...


@dataclass(frozen=True)
class StepRecord:
    """One step of a catalog playbook (its surface form) and its record in the event log."""

    playbook: str
    name: str
    body: dict[str, Any]
    finished: int = 0
    failed: int = 0

    @property
    def success(self) -> float:
        """Laplace-smoothed share of runs that finished (0.5 with no history)."""
        return (self.finished + 1) / (self.finished + self.failed + 2)

    @property
    def kind(self) -> str:
        tool = self.body.get("tool")
        return str(tool.get("kind", "noop")) if isinstance(tool, dict) else "noop"

    def evidence(self) -> str:
        runs = self.finished + self.failed
        if not runs:
            return f"{self.playbook} step {self.name} (no runs yet)"
        return f"{self.playbook} step {self.name} (finished {self.finished} of {runs} runs)"


@dataclass(frozen=True)
class Example:
    """A similar catalog playbook: its path, similarity, YAML and steps."""

    path: str
    score: float
    description: str
    content: str
    workload: dict[str, Any]
    steps: tuple[StepRecord, ...]


@dataclass
class Grounding:
    examples: list[Example] = field(default_factory=list)
    retrieval: str = "none"

    def ranked_steps(self) -> list[tuple[Example, StepRecord]]:
        """Every retrieved step, best first: similarity of its playbook times its success."""
        pairs = [(ex, st) for ex in self.examples for st in ex.steps]
        return sorted(pairs, key=lambda p: -(p[0].score * p[1].success))

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrieval": self.retrieval,
            "playbooks": [{"path": e.path, "score": round(e.score, 4)} for e in self.examples],
        }


def ground(
    store: EventStore | None, description: str, retriever: Retriever | None, *, k: int = 5
) -> Grounding:
    """The catalog playbooks most like ``description``, with their steps' outcomes."""
    if store is None or retriever is None:
        return Grounding()
    found = Grounding(retrieval=retriever.name)
    for path, score in retriever.similar(description, k):
        entry = store.catalog_get(path)
        if entry is None or entry.content is None:
            continue
        document = _parse(entry.content)
        if document is None:
            continue
        outcomes = _outcomes(store, path)
        steps = tuple(
            StepRecord(path, str(s["step"]), s, *outcomes.get(str(s["step"]), (0, 0)))
            for s in document.get("workflow") or []
            if isinstance(s, dict) and "step" in s
        )
        metadata = document.get("metadata") or {}
        found.examples.append(
            Example(
                path=path,
                score=score,
                description=str(metadata.get("description") or ""),
                content=entry.content,
                workload=dict(document.get("workload") or {}),
                steps=steps,
            )
        )
    return found


def _parse(content: str) -> dict[str, Any] | None:
    try:
        document = yaml.load(content, Loader=SafeLoader)
    except yaml.YAMLError:
        return None
    return document if isinstance(document, dict) else None


def _outcomes(store: EventStore, path: str) -> dict[str, tuple[int, int]]:
    try:
        rows = fetch(store, "generate_step_outcomes", {"playbook": path})
    except TypeError:  # not a SQL store: no history to learn from
        return {}
    return {str(r[0]): (int(r[1] or 0), int(r[2] or 0)) for r in rows}


def playbook_text(content: str) -> str | None:
    """What a catalog playbook is about, as one text: name, path, description, step names
    and descriptions, tool kinds. What the ``playbooks`` collection embeds."""
    document = _parse(content)
    if document is None:
        return None
    metadata = document.get("metadata") or {}
    parts = [str(metadata.get(k) or "") for k in ("name", "path", "description")]
    for step in document.get("workflow") or []:
        if not isinstance(step, dict):
            continue
        raw = step.get("tool")
        tool: dict[str, Any] = raw if isinstance(raw, dict) else {}
        parts.append(str(step.get("step", "")).replace("_", " "))
        parts.append(str(step.get("desc") or step.get("description") or ""))
        parts.append(str(tool.get("kind", "")))
        if "loop" in step:
            parts.append("loop over items")
    return " ".join(p for p in parts if p)


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return [w[:6] for w in _WORD.findall(text.lower().replace("_", " ")) if len(w) > 2]


class LexicalRetriever:
    """Word overlap (TF-IDF cosine, words cut to 6 letters) over the catalog's latest
    versions: the fallback when no vector index is available."""

    name = "lexical"

    def __init__(self, store: EventStore) -> None:
        self._docs: dict[str, Counter[str]] = {}
        latest: dict[str, int] = {}
        for entry in store.catalog_list():
            latest[entry.path] = max(entry.version, latest.get(entry.path, 0))
        for path, version in latest.items():
            found = store.catalog_get(path, version)
            text = playbook_text(found.content) if found and found.content else None
            if text:
                self._docs[path] = Counter(_words(text))

    def similar(self, text: str, k: int) -> list[tuple[str, float]]:
        n = len(self._docs)
        if not n:
            return []
        df: Counter[str] = Counter()
        for words in self._docs.values():
            df.update(words.keys())
        idf = {w: math.log((n + 1) / (c + 0.5)) for w, c in df.items()}
        query = Counter(_words(text))
        scored = [(path, _cosine(query, words, idf)) for path, words in self._docs.items()]
        scored = [s for s in scored if s[1] > 0]
        scored.sort(key=lambda s: (-s[1], s[0]))
        return scored[:k]


def _cosine(a: Counter[str], b: Counter[str], idf: dict[str, float]) -> float:
    dot = sum(a[w] * b[w] * idf.get(w, 0.0) ** 2 for w in a.keys() & b.keys())
    if not dot:
        return 0.0
    na = math.sqrt(sum((c * idf.get(w, 0.0)) ** 2 for w, c in a.items()))
    nb = math.sqrt(sum((c * idf.get(w, 0.0)) ** 2 for w, c in b.items()))
    return dot / (na * nb) if na and nb else 0.0
