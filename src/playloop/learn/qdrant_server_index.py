"""A Qdrant server through ``qdrant-client``: the same collections, vectors and payloads as
the Edge shards, for many processes and machines (``PLAYLOOP_QDRANT_URL``).

The collection's model and dimension are the collection's own metadata. BM25 sparse
vectors are made on the client by the same tokeniser as on Edge; the server applies IDF.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from playloop.learn.vectors import DENSE, SPARSE, CollectionMeta, Found, Stored, Where

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models


def server_filter(where: Where | None) -> models.Filter | None:
    from qdrant_client import models

    if not where:
        return None
    conditions: list[Any] = []
    for key, value in where.items():
        if isinstance(value, list | tuple | set):
            conditions.append(
                models.FieldCondition(key=key, match=models.MatchAny(any=list(value)))
            )
        else:
            conditions.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
    return models.Filter(must=conditions)


class ServerBackend:
    """The ``Backend`` on a Qdrant server (or any ``QdrantClient``)."""

    def __init__(self, client: QdrantClient) -> None:
        self.client = client

    @classmethod
    def connect(cls, url: str, *, api_key: str | None = None) -> ServerBackend:
        from qdrant_client import QdrantClient

        return cls(QdrantClient(url=url, api_key=api_key))

    def meta(self, collection: str) -> CollectionMeta | None:
        if not self.client.collection_exists(collection):
            return None
        metadata = self.client.get_collection(collection).config.metadata or {}
        if "model" not in metadata:
            vectors = self.client.get_collection(collection).config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) else 0
            return CollectionMeta("(unknown: not made by playloop)", size)
        return CollectionMeta.from_dict(metadata)

    def ensure(self, collection: str, meta: CollectionMeta, indexed: Sequence[str]) -> None:
        from qdrant_client import models

        if self.client.collection_exists(collection):
            return
        self.client.create_collection(
            collection,
            vectors_config={
                DENSE: models.VectorParams(size=meta.dim, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata=meta.as_dict(),
        )
        for name in indexed:
            self.client.create_payload_index(
                collection, name, field_schema=models.PayloadSchemaType.KEYWORD
            )

    def upsert(self, collection: str, points: Sequence[Stored]) -> None:
        from qdrant_client import models

        self.client.upsert(
            collection,
            [
                models.PointStruct(
                    id=p.id,
                    vector={
                        DENSE: p.dense,
                        SPARSE: models.SparseVector(indices=p.sparse[0], values=p.sparse[1]),
                    },
                    payload=p.payload,
                )
                for p in points
            ],
            wait=True,
        )

    def vectors_by_hash(self, collection: str, hashes: Sequence[str]) -> dict[str, list[float]]:
        if not hashes:
            return {}
        records, _ = self.client.scroll(
            collection,
            scroll_filter=server_filter({"text_hash": list(hashes)}),
            limit=4 * len(hashes),
            with_payload=["text_hash"],
            with_vectors=[DENSE],
        )
        out: dict[str, list[float]] = {}
        for r in records:
            vector = r.vector.get(DENSE) if isinstance(r.vector, dict) else None
            if r.payload and isinstance(vector, list):
                out[str(r.payload["text_hash"])] = [float(x) for x in vector]  # type: ignore[arg-type]
        return out

    def _query(
        self, collection: str, query: Any, using: str, limit: int, where: Where | None, vec: bool
    ) -> list[Found]:
        if not self.client.collection_exists(collection):
            return []
        points = self.client.query_points(
            collection,
            query=query,
            using=using,
            limit=limit,
            query_filter=server_filter(where),
            with_payload=True,
            with_vectors=[DENSE] if vec else False,
        ).points
        found = []
        for p in points:
            vector = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
            dense = [float(x) for x in vector] if isinstance(vector, list) else None  # type: ignore[arg-type]
            found.append(Found(int(p.id), float(p.score), dict(p.payload or {}), dense))
        return found

    def dense(
        self, collection: str, vector: list[float], limit: int, where: Where | None
    ) -> list[Found]:
        return self._query(collection, vector, DENSE, limit, where, False)

    def sparse(
        self,
        collection: str,
        sparse: tuple[list[int], list[float]],
        limit: int,
        where: Where | None,
        with_vector: bool,
    ) -> list[Found]:
        from qdrant_client import models

        query = models.SparseVector(indices=sparse[0], values=sparse[1])
        return self._query(collection, query, SPARSE, limit, where, with_vector)

    def count(self, collection: str) -> int:
        if not self.client.collection_exists(collection):
            return 0
        return int(self.client.count(collection, exact=True).count)

    def drop(self, collection: str) -> None:
        if self.client.collection_exists(collection):
            self.client.delete_collection(collection)

    def optimize(self, collection: str) -> None:
        """A server indexes by itself."""

    def settle(self, collection: str) -> None:
        """A server indexes by itself."""

    def close(self) -> None:
        self.client.close()
