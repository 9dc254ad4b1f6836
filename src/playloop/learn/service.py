"""The learning layer inside a running engine: the indexer in the background and the
similar-failure lookup its workers use, sharing one vector index.

``Engine(home, index=True)`` (``playloop server start``) makes one whose indexer runs in a
child process (``playloop.learn.indexer_process``, which makes one with the indexer in a
thread); ``Engine(home, index="thread")`` (``playloop run``) one with the indexer in a
thread of the engine's process, whose passes wait for pauses in the engine's steps;
``Engine(similar=True)`` alone (``playloop worker start``) one with the lookup only: the
process reads the index that another one keeps (a Qdrant server by URL, or the Edge shards
of a home shared with a server on this machine).

Nothing is loaded up front. The index is opened by whichever needs it first (the indexer
with something to write, a failure to look up), and the embedding model on the first text
that needs a vector: a text the index has no vector for, or a failure's query. A run with
no failure and nothing new to index never loads the model. The first failure of a process
loads it on the lookup's helper thread, so that failure usually goes without
``meta.similar`` (the load takes longer than the budget) and the next ones get their
matches. Neither ever happens on the engine's loop or a step's thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from playloop.engine.events import Event
from playloop.learn.indexer import Indexer
from playloop.learn.indexer_process import IndexerProcess
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
        #: the inner embedder has been loaded (or has made a vector)
        self.loaded = False

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
        self.loaded = True

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            for t in found:
                self._cache.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            vectors = self.inner.embed(missing)
            self.loaded = True
            with self._lock:
                for t, v in zip(missing, vectors, strict=True):
                    found[t] = self._cache[t] = v
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        if not texts:
            return self.inner.embed([])
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)


class Learning:
    """One vector index, its indexer (own database connection) and the failure lookup.

    ``indexer``: ``True``, the indexer in a thread of this process; ``"process"``, in a
    child process (``playloop.learn.indexer_process``: what an engine runs, so that the
    index's writes never hold this process's GIL); ``False``, the lookup only (a worker:
    another process keeps the index). ``wait``: how long the index waits for an Edge shard
    another process holds. ``engine_busy``: when the engine in this process last ran a
    step; the indexer's thread makes its passes in the pauses (``Indexer``).
    """

    def __init__(
        self,
        home: Path,
        db_url: str | None = None,
        *,
        flush_seconds: float = 10.0,
        indexer: bool | Literal["process"] = True,
        wait: float = 30.0,
        engine_busy: Callable[[], float] | None = None,
    ) -> None:
        self.home = Path(home)
        self.flush_seconds = flush_seconds
        self.wait = wait
        self._index: VectorIndex | None = None
        self._embedder: CachedEmbedder | None = None
        #: why the index could not be opened (the last time it was tried), if it could not
        self.error: str | None = None
        self._lock = threading.Lock()
        self.indexer: Indexer | None = None
        self.child: IndexerProcess | None = None
        if indexer and db_url is None:
            raise ValueError("an indexer needs the database URL")
        if indexer == "process":
            assert db_url is not None
            self.child = IndexerProcess(self.home, db_url)
        elif indexer:
            store: SqlStore = open_store(db_url)  # type: ignore[arg-type,assignment]
            self.indexer = Indexer(
                store, self.home, index_factory=self._open, engine_busy=engine_busy
            )
        self.lookup = FailureLookup(self._open)

    def index(self) -> VectorIndex:
        """The shared index (opened now if nothing opened it yet; the model is not loaded)."""
        return self._open()

    def _open(self) -> VectorIndex:
        with self._lock:
            if self._index is None:
                from playloop.learn.vectors import VectorIndex

                embedder = self._embedder or CachedEmbedder(background_embedder())
                self._embedder = embedder
                try:
                    self._index = VectorIndex.open(self.home, embedder, wait=self.wait)
                except Exception as exc:
                    self.error = f"{type(exc).__name__}: {exc}"
                    raise
                self.error = None
            return self._index

    def model_loaded(self) -> bool:
        """Whether this process has loaded the embedding model (or made its first vector)."""
        return self._embedder is not None and self._embedder.loaded

    def warm_up(self) -> None:
        """Open the index and load the model now, in this thread (tests, benchmarks)."""
        index = self._open()
        index.embedder.embed(["warm up"])

    def start(self) -> Learning:
        """Start the indexer's thread or process (it opens the index when it has something
        to write)."""
        if self.indexer is not None:
            self.indexer.start()
        if self.child is not None:
            self.child.start()
        return self

    def notify(self, events: list[Event]) -> None:
        if self.indexer is not None:
            self.indexer.notify(events)
        if self.child is not None:
            self.child.notify(events)

    def flush(self, timeout: float) -> bool:
        """Index what is committed now, for up to ``timeout`` seconds; True when caught up."""
        if self.child is not None:
            return self.child.flush(timeout)
        return self.indexer.flush(timeout) if self.indexer is not None else False

    def close(self) -> None:
        """Index what is committed (up to ``flush_seconds``), then stop and close."""
        if self.child is not None:
            self.child.close(self.flush_seconds)
        if self.indexer is not None:
            self.indexer.stop()
            if self.flush_seconds > 0 and self.error is None:
                self.indexer.flush(self.flush_seconds)
            self.indexer.release()
            with contextlib.suppress(Exception):
                self.indexer.store.close()
        self.lookup.wait_idle(10.0)  # a lookup still running must not reopen a shard
        if self._index is not None:
            with contextlib.suppress(Exception):
                self._index.close()
