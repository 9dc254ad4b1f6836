"""Learned timeouts (``timeout: auto``): from a step's duration quantiles, with a margin.

``max(p99 * 3, p50 * 10)``, clamped to the step's ``[min, max]``, once the step has
``MIN_SAMPLES`` finished runs; before that, the generous ``max`` (10 minutes unless the
playbook says otherwise). Pure: reads a ``Snapshot``.
"""

from __future__ import annotations

from typing import Any

from playloop.dsl.flow import AutoTimeout
from playloop.learn.snapshot import Snapshot

__all__ = ["MIN_SAMPLES", "choose_timeout"]

#: finished runs of a step before its durations set its timeout
MIN_SAMPLES = 20
P99_MARGIN = 3.0
P50_MARGIN = 10.0


def choose_timeout(
    snapshot: Snapshot, *, playbook: str, step: str, bounds: AutoTimeout
) -> tuple[float, dict[str, Any]]:
    """The timeout (seconds) and its evidence, for ``step.started`` meta."""
    stats = snapshot.step(playbook, step)
    durations = stats.durations if stats is not None else None
    if durations is None or durations.count < MIN_SAMPLES:
        seconds = bounds.max
        return seconds, {
            "seconds": seconds,
            "source": "default",
            "samples": durations.count if durations else 0,
            "min": bounds.min,
            "max": bounds.max,
        }
    raw = max(durations.p99 * P99_MARGIN, durations.p50 * P50_MARGIN) / 1000
    seconds = round(min(max(raw, bounds.min), bounds.max), 3)
    return seconds, {
        "seconds": seconds,
        "source": "history",
        "samples": durations.count,
        "p50_ms": durations.p50,
        "p99_ms": durations.p99,
        "rule": f"max(p99*{P99_MARGIN:g}, p50*{P50_MARGIN:g}) clamped to [min, max]",
        "min": bounds.min,
        "max": bounds.max,
    }
