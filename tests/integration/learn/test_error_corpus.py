"""The error corpus of benchmarks/learning: its shape, and hybrid recall on the real embedder."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.learning.corpus import load_corpus
from benchmarks.learning.similar import build, evaluate


def test_corpus_shape() -> None:
    corpus = load_corpus()
    ids = [f.id for f in corpus.families]
    assert len(ids) == len(set(ids)) >= 30
    assert len(corpus.messages()) >= 150
    assert all(len(f.messages) >= 3 and len(f.queries) >= 2 for f in corpus.families)
    assert all(set(f.near) <= set(ids) for f in corpus.families)
    assert sum(1 for f in corpus.families if f.near) >= 30  # near-miss distractors
    texts = [t.text for t in corpus.all_texts()]
    assert len(texts) == len(set(texts))  # no query is also an indexed message


@pytest.mark.slow
def test_hybrid_recall_at_5(tmp_path: Path) -> None:
    corpus = load_corpus()
    index = build(tmp_path, corpus)
    try:
        scores = evaluate(index, corpus, "hybrid", "mean")
    finally:
        index.close()
    assert scores.recall_at_5 >= 0.9, scores
