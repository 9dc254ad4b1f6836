"""Learned retries: retry or not, and after how long, per error class, from the statistics.

Pure: ``choose`` reads a ``Snapshot`` and returns a ``RetryChoice`` whose ``evidence``
goes into the ``step.retrying`` event (or the ``step.failed`` event when it does not
retry), so every choice can be explained afterwards. The rules, in order:

1. never retry a permanent class (4xx other than 408/425/429, bad SQL, playbook errors);
2. never go past the declared bounds (``max_attempts``; a ``Retry-After`` longer than
   ``max_delay`` is not waited for);
3. with enough history (``MIN_EVIDENCE`` retries after this class, at this step or else
   over every step): never retry a class that has never succeeded on retry, nor try an
   attempt number at or past which it never succeeded (given ``MIN_EVIDENCE`` tries
   there), nor one past the last attempt number history knows;
4. with no history: retry only classes known to be transient (5xx, 408, 425, 429,
   timeouts, connection errors, serialization failures), at most ``DEFAULT_ATTEMPTS``;
5. the delay is exponential from the first delay, capped by ``max_delay``, and never
   shorter than the service's ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playloop.learn.errors import is_permanent, is_transient
from playloop.learn.snapshot import MIN_EVIDENCE, Snapshot

__all__ = ["DEFAULT_ATTEMPTS", "RetryChoice", "choose"]

#: attempts (the first included) of the default policy, when there is no history
DEFAULT_ATTEMPTS = 3
#: below this success probability (with ``MIN_EVIDENCE`` tries) the next attempt is not made
MIN_PROBABILITY = 0.02


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
    """Whether attempt ``attempt + 1`` is made after ``attempt`` failed with ``error_class``."""
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
    if history is not None and history.retried >= MIN_EVIDENCE:
        source = "history"
        if history.retry_successes == 0:
            return no(source, "never succeeded on retry")
        later_tries, later_wins = history.from_attempt(nxt)
        if later_tries == 0:
            if nxt > max(history.by_attempt):
                return no(source, f"no attempt {nxt} in history")
        elif later_wins == 0 and later_tries >= MIN_EVIDENCE:
            return no(source, f"never succeeded at attempt {nxt} or later")
        tries, wins = history.at_attempt(nxt)
        if tries >= MIN_EVIDENCE and later_wins / later_tries < MIN_PROBABILITY:
            return no(source, f"success probability under {MIN_PROBABILITY:g}")
    else:
        source = "default"
        if not is_transient(error_class):
            return no(source, "no history, and the class is not known to be transient")
        if nxt > DEFAULT_ATTEMPTS:
            return no(source, f"no history: the default makes {DEFAULT_ATTEMPTS} attempts")
    delay = first_delay * (2 ** (attempt - 1))
    if max_delay is not None:
        delay = min(delay, max_delay)
    if retry_after is not None and retry_after >= delay:
        delay, source = retry_after, "retry-after"
    delay = round(max(delay, 0.0), 3)
    return RetryChoice(True, delay, {**evidence, "source": source, "delay": delay})
