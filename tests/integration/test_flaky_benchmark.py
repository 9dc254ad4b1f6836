"""A small run of ``benchmarks.learning.flaky_retry``: ``retry: auto`` beats fixed policies."""

from __future__ import annotations

from pathlib import Path

from benchmarks.learning.flaky_retry import benchmark


def test_retry_auto_beats_fixed_policies(tmp_path: Path, db_url: str) -> None:
    results = {r.policy: r for r in benchmark(requests=60, train=80, db=db_url, home=tmp_path)}
    auto = results["auto"]
    fixed = [results[p] for p in ("none", "fixed3", "fixed10")]
    # at least as many successes as any fixed policy, more than no retry and 3 attempts
    assert auto.success_rate >= max(r.success_rate for r in fixed)
    assert auto.success_rate > results["none"].success_rate
    assert auto.success_rate > results["fixed3"].success_rate
    # no attempt wasted, no permanent error retried, unlike every retrying policy
    assert auto.wasted == 0 and auto.permanent_retries == 0
    assert results["fixed3"].wasted > 0 and results["fixed10"].wasted > auto.wasted
    assert results["fixed10"].permanent_retries > 0
    # quicker than the policy with the same success rate
    assert auto.wall < results["fixed10"].wall
    assert auto.attempts < results["fixed10"].attempts
