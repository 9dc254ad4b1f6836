"""The public API of the embeddings and the vector index is pinned."""

from __future__ import annotations

from playloop.learn import embed, vectors


def test_embed_api_is_pinned() -> None:
    assert sorted(embed.__all__) == [
        "EmbedError",
        "Embedder",
        "EmbedderUnavailable",
        "ModelError",
        "OnnxEmbedder",
        "OpenAIEmbedder",
        "SentenceTransformerEmbedder",
        "default_embedder",
    ]


def test_vectors_api_is_pinned() -> None:
    assert sorted(vectors.__all__) == [
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


def test_scores_map_into_0_1() -> None:
    assert vectors.bm25_score(0) == 0.0
    assert vectors.bm25_score(vectors.BM25_HALF) == 0.5
    assert 0.99 < vectors.bm25_score(1e4) < 1.0
