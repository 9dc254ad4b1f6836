"""Learned retries: retry or not, how often and after how long, per error class, from the
statistics.

Pure: ``choose`` reads a ``Snapshot`` and returns a ``RetryChoice`` whose ``evidence``
goes into the ``step.retrying`` event (or the ``step.failed`` event when it does not
retry), so every choice can be explained afterwards. The rules, in order:

1. never retry a permanent class (4xx other than 408/425/429, bad SQL, playbook errors);
2. never go past the declared bounds (``max_attempts``; a ``Retry-After`` longer than
   ``max_delay`` is not waited for);
3. with enough history (``MIN_EVIDENCE`` retries after this class, at this step or else
   over every step): never retry a class that has never succeeded on retry, nor try an
   attempt number at or past which it never succeeded (given ``MIN_EVIDENCE`` tries
   there) or succeeded less than ``MIN_PROBABILITY`` of the time, nor one past the last
   attempt number history knows. The attempts planned are the last attempt number these
   rules allow, within ``max_attempts``;
4. with history, the waits are learned from the class's time to recovery (from a chain's
   first failure to the start of the attempt that passed): an exponential backoff whose
   first wait is the recovery time of the quickest ``FIRST_SHARE`` of recoveries and whose
   waits add up, over the planned attempts, to the time by which ``COVER_SHARE`` of them
   had happened; each wait at most ``max_delay``. Quick recoveries give short waits, slow
   ones long waits;
5. with no history: retry only classes known to be transient (5xx, 408, 425, 429,
   timeouts, connection errors, serialization failures), at most ``DEFAULT_ATTEMPTS``,
   exponential from the first delay, capped by ``max_delay``;
6. a wait is never shorter than the service's ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playloop.learn.errors import is_permanent, is_transient
from playloop.learn.snapshot import MIN_EVIDENCE, ClassStats, Snapshot

__all__ = [
    "COVER_SHARE",
    "DEFAULT_ATTEMPTS",
    "FIRST_SHARE",
    "RetryChoice",
    "backoff",
    "choose",
    "planned_attempts",
]

#: attempts (the first included) of the default policy, when there is no history
DEFAULT_ATTEMPTS = 3
#: below this success probability (with ``MIN_EVIDENCE`` tries) the next attempt is not made
MIN_PROBABILITY = 0.02
#: the learned waits add up to the time by which this share of past recoveries happened
#: (all but the negligible rest: the same threshold as the attempts)
COVER_SHARE = 1 - MIN_PROBABILITY
#: the first learned wait is the recovery time of this share of past recoveries (the quickest)
FIRST_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class RetryChoice:
    retry: bool
    delay: float = 0.0
    evidence: dict[str, Any] = field(default_factory=dict)


def choose(
    snapshot: Snapshot,
    *,
    playbook: str,
    step: str,
    error_class: str,
    attempt: int,
    max_attempts: int,
    first_delay: float,
    max_delay: float | None,
    retry_after: float | None = None,
) -> RetryChoice:
    """Whether attempt ``attempt + 1`` is made after ``attempt`` failed with ``error_class``,
    and after how long."""
    nxt = attempt + 1
    evidence: dict[str, Any] = {"class": error_class, "attempt": nxt}
    history, scope = snapshot.error_class(playbook, step, error_class)
    if history is not None:
        tries, wins = history.at_attempt(nxt)
        evidence.update(
            attempts_seen=history.retried,
            successes=history.retry_successes,
            success_probability=history.success_probability,
            scope=scope,
        )
        if tries:
            evidence["success_probability_at_attempt"] = round(wins / tries, 4)
    else:
        evidence.update(attempts_seen=0, successes=0, success_probability=None)

    def no(source: str, reason: str) -> RetryChoice:
        return RetryChoice(False, 0.0, {**evidence, "source": source, "reason": reason})

    if is_permanent(error_class):
        return no("default", "permanent error class")
    if nxt > max_attempts:
        return no("bound", f"max_attempts {max_attempts} reached")
    if retry_after is not None and max_delay is not None and retry_after > max_delay:
        return no("retry-after", f"Retry-After {retry_after:g}s is over max_delay {max_delay:g}s")
    delay: float | None = None
    if history is not None and history.retried >= MIN_EVIDENCE:
        source = "history"
        if history.retry_successes == 0:
            return no(source, "never succeeded on retry")
        reason = _stop(history, nxt)
        if reason is not None:
            return no(source, reason)
        planned = planned_attempts(history, max_attempts, nxt)
        evidence["attempts_planned"] = planned
        plan = backoff(history, planned - 1, max_delay)
        if plan is not None:
            delays, facts = plan
            delay = delays[attempt - 1]
            evidence.update(facts)
    else:
        source = "default"
        if not is_transient(error_class):
            return no(source, "no history, and the class is not known to be transient")
        if nxt > DEFAULT_ATTEMPTS:
            return no(source, f"no history: the default makes {DEFAULT_ATTEMPTS} attempts")
    if delay is None:  # no history (or no recovery time in it): exponential from the first
        delay = first_delay * (2 ** (attempt - 1))
        if max_delay is not None:
            delay = min(delay, max_delay)
    if retry_after is not None and retry_after >= delay:
        delay, source = retry_after, "retry-after"
    delay = round(max(delay, 0.0), 3)
    return RetryChoice(True, delay, {**evidence, "source": source, "delay": delay})


def _stop(history: ClassStats, attempt: int) -> str | None:
    """Why attempt number ``attempt`` after this class is not worth making, or None."""
    later_tries, later_wins = history.from_attempt(attempt)
    if later_tries == 0:
        return f"no attempt {attempt} in history"
    if later_wins == 0 and later_tries >= MIN_EVIDENCE:
        return f"never succeeded at attempt {attempt} or later"
    tries, _ = history.at_attempt(attempt)
    if tries >= MIN_EVIDENCE and later_wins / later_tries < MIN_PROBABILITY:
        return f"success probability under {MIN_PROBABILITY:g}"
    return None


def planned_attempts(history: ClassStats, max_attempts: int, start: int = 2) -> int:
    """The attempts to plan for after this class (the first included): up to the last attempt
    number from ``start`` on that history allows, every one before it allowed too, within
    ``max_attempts``; ``start - 1`` when it allows none."""
    planned = start - 1
    while planned < max_attempts and _stop(history, planned + 1) is None:
        planned += 1
    return planned


def backoff(
    history: ClassStats, retries: int, max_delay: float | None
) -> tuple[list[float], dict[str, Any]] | None:
    """The ``retries`` waits (seconds) learned from the class's recovery times, and the facts
    they came from; None when nothing recovered.

    An exponential backoff: the first wait is the recovery time of the quickest
    ``FIRST_SHARE`` (no retry before any had recovered), and the growth makes the waits add
    up to the recovery time of ``COVER_SHARE`` (a single retry waits that long at once).
    When the recoveries are bunched (the first wait times the retries is past the cover),
    the other waits share what the first leaves. Each wait is at most ``max_delay``.
    """
    first_ms = history.recovery_at(FIRST_SHARE)
    cover_ms = history.recovery_at(COVER_SHARE)
    if first_ms is None or cover_ms is None or retries < 1:
        return None
    first, cover = first_ms / 1000, cover_ms / 1000
    growth = 1.0
    if retries == 1:
        waits = [cover]
    elif cover <= first:  # every recovery took as long: wait that long each time
        waits = [cover] * retries
    elif first * retries >= cover:  # recoveries bunched: share what the first wait leaves
        waits = [first] + [(cover - first) / (retries - 1)] * (retries - 1)
    else:
        if first <= 0:  # instant recoveries: a doubling that ends at the cover
            first = cover / (2**retries - 1)
        growth = _growth(first, cover, retries)
        waits = [first * growth**i for i in range(retries)]
    if max_delay is not None:
        waits = [min(w, max_delay) for w in waits]
    recovery = history.recovery
    facts = {
        "recovery_ms": {
            "samples": recovery.count if recovery else 0,
            f"p{FIRST_SHARE * 100:g}": round(first_ms, 1),
            f"p{COVER_SHARE * 100:g}": round(cover_ms, 1),
        },
        "growth": round(growth, 3),
        "cover_ms": round(sum(waits) * 1000, 1),
    }
    return waits, facts


def _growth(first: float, total: float, n: int) -> float:
    """The ratio r >= 1 with first * (1 + r + ... + r^(n-1)) = total (first * n < total)."""
    low, high = 1.0, total / first
    for _ in range(60):
        mid = (low + high) / 2
        if first * sum(mid**i for i in range(n)) > total:
            high = mid
        else:
            low = mid
    return (low + high) / 2
