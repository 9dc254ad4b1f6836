"""A small run of ``benchmarks.learning.flaky_retry``: after a learning period ``retry:
auto`` with ``timeout: auto`` succeeds at least as often as every fixed policy, wastes a
fraction of their attempts, never retries a permanent error, and ends its batch sooner
than any of them.

The wall-time assertion is structural, not a ratio: a request the server never answers
holds every fixed policy's batch for the whole fixed timeout, and the learned timeout
cuts it after 1 s; the slowest thing left in auto's batch is a restart of at most 2.5 s
that it waits out.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.learning.flaky_retry import NO_ANSWER, fault_of, run

FIXED_TIMEOUT = 5.0


def test_learned_policies_beat_fixed_policies(tmp_path: Path, db_url: str) -> None:
    keys = [f"req{i}" for i in range(80)]
    # the sample holds every kind of fault, restarts longer than fixed10's 1.3 s of waits
    faults = [fault_of(k) for k in keys]
    restarts = [f.clears_after for f in faults if f is not None and f.clears_after is not None]
    assert max(restarts) > 2
    assert {f.status for f in faults if f} == {NO_ANSWER, 400, 404, 429, 500, 503}
    unanswered = sum(1 for f in faults if f is not None and f.status == NO_ANSWER)
    done = run(
        requests=80, train=300, db=db_url, home=tmp_path, train_rate=100,
        fixed_timeout=FIXED_TIMEOUT,
    )  # fmt: skip
    results = {r.policy: r for r in done.results}
    auto, auto_retry = results["auto"], results["auto-retry"]
    fixed = [results[p] for p in ("none", "fixed3", "fixed10")]
    none, fixed3, fixed10 = fixed
    # more successes than fixed3 (it gives up on the restarts and on 503s that pass on
    # attempt 4-5) and none, at least as many as fixed10 (the restarts longer than its
    # waits). Not strictly more: the learning period's longest restart is 2.2 s and two
    # of these last 2.4-2.5 s; auto waits as long as history says restarts take, and
    # fixed10's waits stretch under its own load (the full benchmark, with 400
    # requests, rescues them all)
    assert auto.success_rate >= fixed10.success_rate >= fixed3.success_rate
    assert auto.success_rate > fixed3.success_rate > none.success_rate
    # no permanent error retried (every retrying policy does), far fewer attempts wasted
    assert auto.permanent_retries == 0 and fixed3.permanent_retries > 0
    assert fixed10.permanent_retries > 0
    assert auto.wasted < fixed3.wasted / 2 and auto.wasted < fixed10.wasted / 4
    # about as little load per success as no retry at all, far less than fixed10
    assert auto.attempts < fixed10.attempts
    assert auto.attempts / auto.succeeded < 2 * none.attempts / none.succeeded
    # every policy met the unanswered requests; timeout: auto learned 1 s from durations
    # of a few milliseconds (the rule's figure is lower; 1 s is its default floor)
    assert all(r.timed_out == unanswered for r in results.values())
    assert auto.timeout == 1.0
    assert all(r.timeout == FIXED_TIMEOUT for r in (*fixed, auto_retry))
    # so every fixed batch lasts the fixed timeout at least, and auto's ends before it;
    # retry: auto under the fixed timeout ends no sooner than the fixed policies
    assert auto.wall < FIXED_TIMEOUT <= min(r.wall for r in fixed)
    assert auto_retry.wall >= FIXED_TIMEOUT
    assert auto_retry.permanent_retries == 0
