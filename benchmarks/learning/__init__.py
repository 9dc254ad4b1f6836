"""Benchmarks of the learning layer: embeddings, the vector index, similar-failure recall."""
