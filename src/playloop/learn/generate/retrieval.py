"""Similar catalog playbooks from the vector index (``playbooks`` collection).

``index_catalog_playbooks`` fills the collection from the catalog's latest versions itself;
it stands in for the learning layer's indexer (a projection of the catalog) until that is
wired here, and is safe to run every time: one point per catalog path (the indexer's id
and payload shape), and the index's hash cache embeds an unchanged text only once.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from playloop.learn.generate.grounding import (
    LexicalRetriever,
    Retriever,
    SafeLoader,
    playbook_text,
)
from playloop.store.base import EventStore

if TYPE_CHECKING:
    from playloop.learn.embed import Embedder
    from playloop.learn.vectors import VectorIndex

__all__ = ["VectorRetriever", "index_catalog_playbooks", "open_retriever"]

log = logging.getLogger("playloop.generate")
COLLECTION = "playbooks"


def index_catalog_playbooks(index: VectorIndex, store: EventStore) -> int:
    """Upsert the latest version of every catalog playbook into ``playbooks``; the number
    of points written. (A stand-in for the catalog indexer: replace freely.)"""
    from playloop.learn.vectors import Item

    latest: dict[str, int] = {}
    for entry in store.catalog_list():
        latest[entry.path] = max(entry.version, latest.get(entry.path, 0))
    key = (index.where, frozenset(latest.items()))
    if key in _INDEXED:
        return 0  # this process indexed exactly these versions already
    items: list[Item] = []
    for path, version in sorted(latest.items()):
        found = store.catalog_get(path, version)
        text = playbook_text(found.content) if found and found.content else None
        if found is None or not text:
            continue
        items.append(Item(_point_id(path), text, _payload(path, version, found.content or "")))
    written = index.upsert(COLLECTION, items) if items else 0
    _INDEXED.add(key)
    return written


#: (index location, catalog versions) this process has indexed
_INDEXED: set[tuple[str, frozenset[tuple[str, int]]]] = set()


@cache
def _embedder() -> Embedder:
    """One embedder per process (loading the model is the slow part of opening the index)."""
    from playloop.learn.embed import default_embedder

    return default_embedder()


def _point_id(path: str) -> int:
    """One point per catalog path: the id and payload shape the catalog indexer
    (learn-index) uses, so the two write the same points."""
    digest = hashlib.sha256(path.encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1) or 1


def _payload(path: str, version: int, content: str) -> dict[str, Any]:
    parsed = yaml.load(content, Loader=SafeLoader)
    document: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    raw = document.get("metadata")
    metadata: dict[str, Any] = raw if isinstance(raw, dict) else {}
    steps = [s for s in document.get("workflow") or [] if isinstance(s, dict)]
    kinds = {str(s["tool"].get("kind")) for s in steps if isinstance(s.get("tool"), dict)}
    return {
        "path": path,
        "name": str(metadata.get("name") or path),
        "version": version,
        "description": str(metadata.get("description") or "")[:1000],
        "steps": [str(s.get("step")) for s in steps],
        "tools": sorted(kinds),
    }


class VectorRetriever:
    """Hybrid (dense + BM25) search of the ``playbooks`` collection, one hit per path."""

    name = "vectors"

    def __init__(self, index: VectorIndex) -> None:
        self.index = index

    def similar(self, text: str, k: int) -> list[tuple[str, float]]:
        best: dict[str, float] = {}
        for hit in self.index.search(COLLECTION, text, k=2 * k):
            path = hit.payload.get("path")
            if isinstance(path, str) and path not in best:
                best[path] = hit.score
        return sorted(best.items(), key=lambda p: -p[1])[:k]


@contextmanager
def open_retriever(
    home: Path | None, store: EventStore | None, *, keep: bool = False
) -> Iterator[Retriever | None]:
    """The vector index's retriever (the catalog indexed first), else the word-overlap
    fallback when the index cannot be opened (busy, another embedder, not installed).
    ``keep``: leave the index open for the next call of this process (a server); the
    shards are handed over to any other process that asks for them."""
    if store is None:
        yield None
        return
    index = None
    if home is not None:
        key = str(Path(home).resolve())
        try:
            index = _KEPT.pop(key, None) if keep else None
            if index is None:
                from playloop.learn.vectors import VectorIndex

                index = VectorIndex.open(home, _embedder(), wait=5.0)
            index_catalog_playbooks(index, store)
        except Exception as exc:  # any failure of the index: generate still works
            log.warning("vector index unavailable, using word overlap: %s", exc)
            if index is not None:
                index.close()
            index = None
    try:
        yield VectorRetriever(index) if index is not None else LexicalRetriever(store)
    finally:
        if index is not None:
            if keep and home is not None and str(Path(home).resolve()) not in _KEPT:
                _KEPT[str(Path(home).resolve())] = index
            else:
                index.close()


#: indexes left open by ``open_retriever(keep=True)``, by home; closed at exit
_KEPT: dict[str, VectorIndex] = {}


@atexit.register
def _close_kept() -> None:
    while _KEPT:
        _KEPT.popitem()[1].close()
