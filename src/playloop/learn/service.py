"""The learning layer inside a running engine: the indexer in the background and the
similar-failure lookup its workers use, sharing one vector index.

``Engine(home, index=True)`` (``playloop run``, ``playloop server start``) makes one. The
index is opened and the embedding model loaded on the indexer's thread, never on the
engine's loop or a step's thread; until then failures go without ``meta.similar``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playloop.engine.events import Event
from playloop.learn.indexer import Indexer
from playloop.learn.similar import FailureLookup
from playloop.store.open import open_store

if TYPE_CHECKING:
    from playloop.learn.embed import Embedder, Vectors
    from playloop.learn.vectors import VectorIndex
    from playloop.store.sqlstore import SqlStore

__all__ = ["CachedEmbedder", "Learning", "background_embedder"]

log = logging.getLogger("playloop.learn")


def background_embedder() -> Embedder:
    """The configured embedder; the bundled model with one thread, so that indexing in the
    background leaves the other cores to the steps (``PLAYLOOP_EMBED_THREADS`` overrides)."""
    from playloop.learn.embed import OnnxEmbedder, default_embedder

    if (
        os.environ.get("PLAYLOOP_EMBED_URL")
        or os.environ.get("PLAYLOOP_EMBED_MODEL")
        or os.environ.get("PLAYLOOP_EMBED_THREADS")
    ):
        return default_embedder()
    return OnnxEmbedder(threads=1)


class CachedEmbedder:
    """An embedder that remembers the vectors of recent texts (a failing step's query text
    is usually one seen before: the same error again)."""

    def __init__(self, inner: Embedder, size: int = 1024) -> None:
        self.inner = inner
        self.size = size
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def load(self) -> None:
        load = getattr(self.inner, "load", None)
        if callable(load):
            load()

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            for t in found:
                self._cache.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            vectors = self.inner.embed(missing)
            with self._lock:
                for t, v in zip(missing, vectors, strict=True):
                    found[t] = self._cache[t] = v
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        if not texts:
            return self.inner.embed([])
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)


class Learning:
    """One vector index, its indexer (own database connection) and the failure lookup."""

    def __init__(self, home: Path, db_url: str, *, flush_seconds: float = 10.0) -> None:
        self.home = Path(home)
        self.flush_seconds = flush_seconds
        self._index: VectorIndex | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        store: SqlStore = open_store(db_url)  # type: ignore[assignment]
        self.indexer = Indexer(store, self.home, index_factory=self._open)
        self.lookup = FailureLookup(self.ready_index)
        self._warm = threading.Thread(target=self._warm_up, name="playloop-learn", daemon=True)

    def index(self) -> VectorIndex:
        """The shared index (opened now if the indexer's thread has not yet)."""
        return self._open()

    def _open(self) -> VectorIndex:
        with self._lock:
            if self._index is None:
                from playloop.learn.vectors import VectorIndex

                embedder = CachedEmbedder(background_embedder())
                self._index = VectorIndex.open(self.home, embedder)
            return self._index

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the index is open and the model loaded (True), or ``timeout``."""
        return self._ready.wait(timeout)

    def ready_index(self) -> VectorIndex | None:
        """The index once open and its model loaded; None before (a lookup then skips)."""
        return self._index if self._ready.is_set() else None

    def _warm_up(self) -> None:
        try:
            index = self._open()
            index.embedder.embed(["warm up"])
            from playloop.learn.documents import FAILURES

            index.search(FAILURES, "warm up", k=1)  # opens the shard in this process
            self._ready.set()
        except Exception:
            log.warning("the vector index could not be opened", exc_info=True)
            return
        self.indexer.start()

    def start(self) -> Learning:
        self._warm.start()
        return self

    def notify(self, events: list[Event]) -> None:
        self.indexer.notify(events)

    def close(self) -> None:
        """Index what is committed (up to ``flush_seconds``), then stop and close."""
        self._warm.join(timeout=30)
        self.indexer.stop()
        if self._ready.is_set() and self.flush_seconds > 0:
            self.indexer.flush(self.flush_seconds)
        self.indexer.release()
        with contextlib.suppress(Exception):
            self.indexer.store.close()
        if self._index is not None:
            with contextlib.suppress(Exception):
                self._index.close()
