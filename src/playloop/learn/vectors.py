"""The vector index of the learning layer: Qdrant Edge in-process, a Qdrant server by URL.

    index = VectorIndex.open(home)                 # $PLAYLOOP_QDRANT_URL picks the server
    index.upsert("failures", [Item(event_id, text, payload), ...])   # -> points written
    index.search("failures", "connect ECONNREFUSED", k=5, mode="hybrid",
                 where={"playbook": "data/ingestion/daily_load"})   # -> [Hit(id, score, payload)]
    index.count("failures"); index.drop("failures"); index.close()

Collections (``COLLECTIONS``): ``failures``, ``playbooks``, ``decisions``. Each point has a
dense vector ``dense`` (the embedder's, cosine) and a sparse vector ``bm25`` (Qdrant's
BM25 tokeniser: lower-cased words and numbers, English stop words and stemming, so codes
such as ``429``, ``ECONNREFUSED``, ``23505`` and ``SQLSTATE`` are terms; IDF applied by
Qdrant). Point ids are the caller's: the event id for failures and decisions, ``point_id``
of the catalog id for playbooks, so upserting the same thing twice writes it once.

Scores, all in 0..1:
- ``dense``: the cosine similarity, clipped at 0.
- ``bm25``: the raw BM25 score s mapped to s / (s + 10): 0.5 for a score of 10 (about two
  rare terms matched), approaching 1 as more terms match.
- ``hybrid`` (the default): 0.8 x dense + 0.2 x bm25, each candidate scored by both (its
  cosine computed from its stored vector; its BM25 part 0 when BM25 did not rank it among
  its top candidates). Normalised-score fusion with these weights was chosen over an even
  mix and over reciprocal rank fusion (``fusion="rrf"``, also available) by the
  error-corpus benchmark (benchmarks/learning/similar.py; docs/learning.md has figures).

The model name and dimension are stored with each collection (Edge: ``meta.json`` beside
the shard; server: the collection's metadata); opening it with another embedder raises
``EmbedderMismatch``, which says to run ``playloop learn rebuild``.

The hash cache: each point carries ``text_hash`` (of the model name and the text); an
upsert reuses the stored vector of any point with the same hash instead of embedding the
text again (repeated error messages are the common case).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from qdrant_edge import Bm25

    from playloop.learn.embed import Embedder

__all__ = [
    "COLLECTIONS",
    "CollectionMeta",
    "EmbedderMismatch",
    "Hit",
    "IndexBusy",
    "Item",
    "Mode",
    "UnknownCollection",
    "VectorIndex",
    "point_id",
]

Mode = Literal["dense", "bm25", "hybrid"]
Where = Mapping[str, Any]
DENSE = "dense"
SPARSE = "bm25"
#: the raw BM25 score that maps to 0.5 (see the module docstring)
BM25_HALF = 10.0
#: the dense part of a hybrid score (the rest is BM25's)
DENSE_WEIGHT = 0.8
#: how many candidates each of dense and BM25 brings to a hybrid search (at least)
CANDIDATES = 50
#: BM25 document-length normalisation: error messages and descriptions are short
BM25_AVG_LEN = 20.0

#: collection -> payload fields with a keyword index (filterable by ``where``)
COLLECTIONS: dict[str, tuple[str, ...]] = {
    "failures": (
        "playbook",
        "step",
        "tool",
        "execution_id",
        "event_id",
        "error_type",
        "error_class",
        "status",
        "resolution",
    ),
    "playbooks": ("path", "version", "tools"),
    "decisions": ("playbook", "step", "execution_id", "action"),
}
INDEXED_ALWAYS = ("text_hash",)


class UnknownCollection(KeyError):
    """No such collection: the collections are failures, playbooks and decisions."""


class EmbedderMismatch(RuntimeError):
    """The collection was built with another embedding model: run `playloop learn rebuild`."""


class IndexBusy(TimeoutError):
    """Another process held the vector index for too long."""


@dataclass(frozen=True, slots=True)
class Item:
    """A point to upsert: ``text`` is embedded; ``payload`` is stored (and ``text`` too)."""

    id: int
    text: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result: ``score`` in 0..1 (see the module docstring); ``dense`` and
    ``bm25`` are the two parts of a hybrid score (None when that part was not asked)."""

    id: int
    score: float
    payload: dict[str, Any]
    dense: float | None = None
    bm25: float | None = None


@dataclass(frozen=True, slots=True)
class CollectionMeta:
    """What a collection's vectors are: the model and dimension, and the BM25 set-up."""

    model: str
    dim: int
    bm25: str = f"qdrant-edge Bm25 english avg_len={BM25_AVG_LEN:g}"

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dim": self.dim, "bm25": self.bm25}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectionMeta:
        return cls(str(data["model"]), int(data["dim"]), str(data.get("bm25", "")))


@dataclass(frozen=True, slots=True)
class Stored:
    """A point as the backends write it."""

    id: int
    dense: list[float]
    sparse: tuple[list[int], list[float]]
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Found:
    """A point as the backends return it: the raw score of the query that found it."""

    id: int
    score: float
    payload: dict[str, Any]
    dense: list[float] | None


class Backend(Protocol):
    """One Qdrant: Qdrant Edge shards or a Qdrant server (the only callers of Qdrant)."""

    def meta(self, collection: str) -> CollectionMeta | None: ...

    def ensure(self, collection: str, meta: CollectionMeta, indexed: Sequence[str]) -> None: ...

    def upsert(self, collection: str, points: Sequence[Stored]) -> None: ...

    def vectors_by_hash(self, collection: str, hashes: Sequence[str]) -> dict[str, list[float]]: ...

    def dense(
        self, collection: str, vector: list[float], limit: int, where: Where | None
    ) -> list[Found]: ...

    def sparse(
        self,
        collection: str,
        sparse: tuple[list[int], list[float]],
        limit: int,
        where: Where | None,
        with_vector: bool,
    ) -> list[Found]: ...

    def count(self, collection: str) -> int: ...

    def drop(self, collection: str) -> None: ...

    def optimize(self, collection: str) -> None: ...

    def settle(self, collection: str) -> None: ...

    def close(self) -> None: ...


def point_id(key: str | int) -> int:
    """A deterministic point id: a non-negative int as it is, else 63 bits of its sha256."""
    if isinstance(key, int) and 0 <= key < 2**63:
        return key
    digest = hashlib.sha256(str(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def text_hash(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()[:32]


def bm25_score(raw: float) -> float:
    return raw / (raw + BM25_HALF) if raw > 0 else 0.0


def _bm25() -> Bm25:
    from qdrant_edge import Bm25, Bm25Config

    return Bm25(Bm25Config(avg_len=BM25_AVG_LEN, language="english"))


class VectorIndex:
    """The learning layer's vector collections on one Qdrant (see the module docstring)."""

    def __init__(self, backend: Backend, embedder: Embedder, *, where: str) -> None:
        self.backend = backend
        self.embedder = embedder
        self.where = where
        self.stats = {"embedded": 0, "reused": 0}
        self._bm25 = _bm25()
        #: collections whose meta matched the embedder (not asked again)
        self._checked: dict[str, CollectionMeta] = {}

    @classmethod
    def open(
        cls,
        home: Path | str,
        embedder: Embedder | None = None,
        *,
        url: str | None = None,
        wait: float = 30.0,
    ) -> VectorIndex:
        """Qdrant Edge shards under ``<home>/vectors``, or the Qdrant server at ``url``
        (default ``$PLAYLOOP_QDRANT_URL``). ``wait``: how long an Edge shard held by
        another process is waited for before ``IndexBusy``. Checks every existing
        collection's model against ``embedder`` (default: ``default_embedder()``)."""
        from playloop.learn.embed import default_embedder

        embedder = embedder or default_embedder()
        url = url or os.environ.get("PLAYLOOP_QDRANT_URL") or None
        backend: Backend
        if url:
            from playloop.learn.qdrant_server_index import ServerBackend

            backend = ServerBackend.connect(url, api_key=os.environ.get("PLAYLOOP_QDRANT_KEY"))
            where = url
        else:
            from playloop.learn.qdrant_edge_index import EdgeBackend

            folder = Path(home) / "vectors"
            backend = EdgeBackend(folder, wait=wait)
            where = str(folder)
        index = cls(backend, embedder, where=where)
        try:
            for collection in COLLECTIONS:
                index._check(collection)
        except BaseException:
            index.close()
            raise
        return index

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, collection: str) -> CollectionMeta | None:
        self._check_name(collection)
        if collection in self._checked:
            return self._checked[collection]
        meta = self.backend.meta(collection)
        if meta is None:
            return None
        if meta.model != self.embedder.name or meta.dim != self.embedder.dim:
            raise EmbedderMismatch(
                f"collection {collection!r} in {self.where} was built with {meta.model} "
                f"({meta.dim} dimensions), but the embedder now is {self.embedder.name} "
                f"({self.embedder.dim} dimensions): run `playloop learn rebuild` to re-embed "
                "it, or set PLAYLOOP_EMBED_URL / PLAYLOOP_EMBED_MODEL back"
            )
        self._checked[collection] = meta
        return meta

    def upsert(self, collection: str, items: Sequence[Item], *, batch: int = 256) -> int:
        """Write ``items`` (same id: replaced); returns the number of points written.
        Texts whose hash is already in the collection are not embedded again."""
        if self._check(collection) is None:
            meta = CollectionMeta(self.embedder.name, self.embedder.dim)
            self.backend.ensure(collection, meta, COLLECTIONS[collection] + INDEXED_ALWAYS)
            self._check(collection)
        latest = {item.id: item for item in items}  # the last of one id wins
        written = 0
        todo = list(latest.values())
        for start in range(0, len(todo), batch):
            written += self._upsert(collection, todo[start : start + batch])
        self.backend.settle(collection)
        return written

    def _upsert(self, collection: str, items: Sequence[Item]) -> int:
        hashes = [text_hash(self.embedder.name, item.text) for item in items]
        known = self.backend.vectors_by_hash(collection, sorted(set(hashes)))
        missing = sorted({h for h in hashes if h not in known})
        if missing:
            text_of = {h: item.text for h, item in zip(hashes, items, strict=True)}
            vectors = self.embedder.embed([text_of[h] for h in missing])
            known.update({h: v.tolist() for h, v in zip(missing, vectors, strict=True)})
        self.stats["embedded"] += len(missing)
        self.stats["reused"] += len(items) - len(missing)
        points = []
        for item, h in zip(items, hashes, strict=True):
            sparse = self._bm25.embed_document(item.text)
            payload = {**item.payload, "text": item.text, "text_hash": h}
            points.append(Stored(item.id, known[h], (sparse.indices, sparse.values), payload))
        self.backend.upsert(collection, points)
        return len(points)

    def search(
        self,
        collection: str,
        text: str,
        *,
        k: int = 5,
        min_score: float = 0.0,
        mode: Mode = "hybrid",
        where: Where | None = None,
        fusion: Literal["mean", "rrf"] = "mean",
    ) -> list[Hit]:
        """The ``k`` best points for ``text`` with a score >= ``min_score`` (0..1),
        among those whose payload matches ``where`` ({field: value or [values]})."""
        if mode not in ("dense", "bm25", "hybrid"):
            raise ValueError(f"mode must be dense, bm25 or hybrid, not {mode!r}")
        if self._check(collection) is None or k <= 0:
            return []
        hits: list[Hit]
        if mode == "dense":
            query = self.embedder.embed([text])[0].tolist()
            found = self.backend.dense(collection, query, k, where)
            hits = [Hit(f.id, max(0.0, f.score), f.payload, dense=max(0.0, f.score)) for f in found]
        elif mode == "bm25":
            sparse = self._bm25.embed_query(text)
            found = self.backend.sparse(
                collection, (sparse.indices, sparse.values), k, where, False
            )
            hits = [
                Hit(f.id, bm25_score(f.score), f.payload, bm25=bm25_score(f.score)) for f in found
            ]
        else:
            hits = self._hybrid(collection, text, max(CANDIDATES, 4 * k), where, fusion)
        return [h for h in hits if h.score >= min_score][:k]

    def _hybrid(
        self, collection: str, text: str, limit: int, where: Where | None, fusion: str
    ) -> list[Hit]:
        import numpy as np

        query = self.embedder.embed([text])[0]
        sparse = self._bm25.embed_query(text)
        by_dense = self.backend.dense(collection, query.tolist(), limit, where)
        by_bm25 = (
            self.backend.sparse(collection, (sparse.indices, sparse.values), limit, where, True)
            if sparse.indices
            else []
        )
        payloads = {f.id: f.payload for f in (*by_dense, *by_bm25)}
        cosine = {f.id: max(0.0, f.score) for f in by_dense}
        for f in by_bm25:
            if f.id not in cosine and f.dense is not None:
                cosine[f.id] = max(0.0, float(np.dot(np.asarray(f.dense, np.float32), query)))
        lexical = {f.id: bm25_score(f.score) for f in by_bm25}
        if fusion == "rrf":
            rank_d = {f.id: r for r, f in enumerate(by_dense)}
            rank_b = {f.id: r for r, f in enumerate(by_bm25)}
            best = 2 / (RRF_K + 1)
            scores = {
                i: (
                    (1 / (RRF_K + 1 + rank_d[i]) if i in rank_d else 0.0)
                    + (1 / (RRF_K + 1 + rank_b[i]) if i in rank_b else 0.0)
                )
                / best
                for i in payloads
            }
        else:
            scores = {
                i: DENSE_WEIGHT * cosine.get(i, 0.0) + (1 - DENSE_WEIGHT) * lexical.get(i, 0.0)
                for i in payloads
            }
        ranked = sorted(payloads, key=lambda i: (-scores[i], i))
        return [
            Hit(i, scores[i], payloads[i], dense=cosine.get(i, 0.0), bm25=lexical.get(i, 0.0))
            for i in ranked
        ]

    def count(self, collection: str) -> int:
        if self._check(collection) is None:
            return 0
        return self.backend.count(collection)

    def drop(self, collection: str) -> None:
        """Delete the collection and its meta (``upsert`` makes it again)."""
        self._check_name(collection)
        self.backend.drop(collection)
        self._checked.pop(collection, None)

    def optimize(self, collection: str) -> None:
        """Build the HNSW and payload indexes now (Edge; a server does it by itself)."""
        if self._check(collection) is not None:
            self.backend.optimize(collection)

    def close(self) -> None:
        self.backend.close()

    @staticmethod
    def _check_name(collection: str) -> None:
        if collection not in COLLECTIONS:
            known = ", ".join(COLLECTIONS)
            raise UnknownCollection(f"no collection {collection!r} (the collections: {known})")


#: reciprocal rank fusion's k (only for ``fusion="rrf"``)
RRF_K = 60
