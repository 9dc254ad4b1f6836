"""Similar-failure recall on the error corpus: dense, BM25 and hybrid search.

    python -m benchmarks.learning.similar [--json]

Indexes every message of benchmarks/learning/errors.yaml into a fresh Qdrant Edge
``failures`` collection with the default embedder, then searches each held-out query.
A hit is right when its family is the query's. Reports recall@1, recall@5 and MRR (of
the first right hit in the top 10) per mode, and for hybrid both fusions.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.learning.corpus import Corpus, load_corpus
from playloop.learn.vectors import Item, VectorIndex

#: (label, mode, fusion)
METHODS = [
    ("dense", "dense", "mean"),
    ("bm25", "bm25", "mean"),
    ("hybrid", "hybrid", "mean"),
    ("hybrid-rrf", "hybrid", "rrf"),
]


@dataclass(frozen=True, slots=True)
class Scores:
    recall_at_1: float
    recall_at_5: float
    mrr: float
    misses: tuple[tuple[str, str, str], ...]  # (query, its family, the top hit's family)


def evaluate(index: VectorIndex, corpus: Corpus, mode: Any, fusion: Any) -> Scores:
    at1 = at5 = 0
    rr = 0.0
    misses = []
    queries = corpus.queries()
    for q in queries:
        hits = index.search("failures", q.text, k=10, mode=mode, fusion=fusion)
        families = [h.payload["error_class"] for h in hits]
        rank = next((i for i, f in enumerate(families) if f == q.family), None)
        if rank == 0:
            at1 += 1
        else:
            misses.append((q.text, q.family, families[0] if families else "-"))
        if rank is not None and rank < 5:
            at5 += 1
        if rank is not None:
            rr += 1 / (rank + 1)
    n = len(queries)
    return Scores(at1 / n, at5 / n, rr / n, tuple(misses))


def build(home: Path, corpus: Corpus) -> VectorIndex:
    index = VectorIndex.open(home)
    items = [
        Item(i + 1, m.text, {"error_class": m.family}) for i, m in enumerate(corpus.messages())
    ]
    index.upsert("failures", items)
    return index


def run() -> dict[str, Scores]:
    corpus = load_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        index = build(Path(tmp), corpus)
        try:
            return {label: evaluate(index, corpus, mode, fusion) for label, mode, fusion in METHODS}
        finally:
            index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--misses", action="store_true", help="list the top-1 misses of hybrid")
    args = parser.parse_args()
    corpus = load_corpus()
    started = time.perf_counter()
    results = run()
    took = time.perf_counter() - started
    if args.json:
        print(json.dumps({k: {**v.__dict__, "misses": len(v.misses)} for k, v in results.items()}))
        return
    print(
        f"{len(corpus.families)} families, {len(corpus.messages())} messages indexed, "
        f"{len(corpus.queries())} held-out queries ({took:.1f} s)"
    )
    print(f"{'method':<12} {'recall@1':>9} {'recall@5':>9} {'MRR':>7}")
    for label, s in results.items():
        print(f"{label:<12} {s.recall_at_1:>9.3f} {s.recall_at_5:>9.3f} {s.mrr:>7.3f}")
    if args.misses:
        for text, family, got in results["hybrid"].misses:
            print(f"  {family} -> {got}: {text}")


if __name__ == "__main__":
    main()
