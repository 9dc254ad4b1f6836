"""A small run of ``benchmarks.learning.flaky_retry``: after a learning period ``retry:
auto`` succeeds more often than every fixed policy and wastes no attempt.

Behaviour only: this machine is too noisy for wall-time ratios (the benchmark prints them).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.learning.flaky_retry import benchmark, fault_of


def test_retry_auto_beats_fixed_policies(tmp_path: Path, db_url: str) -> None:
    keys = [f"req{i}" for i in range(60)]
    # the sample holds every kind of fault, restarts longer than fixed10's 1.3 s of waits
    faults = [fault_of(k) for k in keys]
    restarts = [f.clears_after for f in faults if f is not None and f.clears_after is not None]
    assert max(restarts) > 2 and {f.status for f in faults if f} == {400, 404, 429, 500, 503}
    results = {
        r.policy: r
        for r in benchmark(requests=60, train=100, db=db_url, home=tmp_path, train_rate=100)
    }
    auto, none, fixed3, fixed10 = (results[p] for p in ("auto", "none", "fixed3", "fixed10"))
    # more successes than any fixed policy: fixed3 gives up on the restarts and on 503s
    # that pass on attempt 4-5, fixed10 on the restarts longer than its waits
    assert auto.success_rate > fixed10.success_rate >= fixed3.success_rate > none.success_rate
    # no permanent error retried (every retrying policy does), far fewer attempts wasted
    assert auto.permanent_retries == 0 and fixed3.permanent_retries > 0
    assert fixed10.permanent_retries > 0
    assert auto.wasted < fixed3.wasted / 2 and auto.wasted < fixed10.wasted / 4
    # about as little load per success as no retry at all, far less than fixed10
    assert auto.attempts < fixed10.attempts
    assert auto.attempts / auto.succeeded < 2 * none.attempts / none.succeeded
