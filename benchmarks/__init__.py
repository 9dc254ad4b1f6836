"""playloop's own benchmarks: ``python -m benchmarks`` (see docs/performance.md)."""
