"""Learned retries against a flaky service: ``retry: auto`` versus fixed policies.

    python -m benchmarks.learning.flaky_retry [--db URL] [--requests 400] [--train 300]

A real HTTP server on 127.0.0.1 answers each request after 2-6 ms (a service's latency)
by a fault schedule keyed per request, so the same request fails the same way under every
policy. The proportions (``fault_of``):

- 47% fine;
- 3% no answer to the first attempt (a backend that died behind the balancer: the
  connection is taken, nothing comes back; a retry reaches a live one);
- 16% ``503`` for 1-4 attempts (count-based: it passes on attempt 2-5 however long the
  client waited);
- 8% ``503`` until 0.5-2.5 s after the request's first failure (time-based: a dependency
  restarting; every attempt before then is a 503, however many);
- 8% ``429`` with ``Retry-After: 0.03`` for 1-2 throttling windows (a retry before the
  window ends is another 429);
- 6% ``400`` and 6% ``404`` (permanent);
- 6% ``500`` forever (a bug for that input: transient by its class, it never passes).

Each request is one execution of a one-step playbook (an ``http`` step). A learning period
first runs other requests (``--train``, 50 started per second: history builds up under a
steady load) on the learning policies' playbook path under a generous policy,
``explore``: 10 attempts, exponential from 20 ms, at most 500 ms apart (2.6 s of waits in
all), so that its statistics hold recoveries of every length; a policy can only learn a
wait someone has tried. Then every policy runs the same evaluation requests, all started
at once on the engine's 16 step slots, one policy after another; the wall time is until
the last of them ends:

- ``none``: no retry;
- ``fixed3``: 3 attempts, exponential from 20 ms (60 ms of waits);
- ``fixed10``: 10 attempts, exponential from 20 ms, at most 200 ms (1.3 s of waits);
- ``auto``: ``retry: {auto: true, delay: 20ms}`` and ``timeout: auto``: no bounds, so the
  defaults (5 attempts, at most 30 s per wait; a timeout within [1 s, 10 min]); ``delay``
  is the first wait of a class with no history only;
- ``auto-retry``: ``retry: auto`` alone, under the fixed timeout: what the learned retries
  do without the learned timeout. It runs last, on the same path as ``auto``, so it has
  also learned from ``auto``'s run.

The fixed policies and the learning period let an attempt run ``--fixed-timeout``
seconds (5: what a person sets without history, six times below the http tool's default
of 30 s). Delays are milliseconds (the real thing's seconds, scaled down). Printed first:
what ``auto`` plans per error class from the learning period (attempts, the recovery
times it read, its waits) and the timeout it learns from the durations, then per policy:
success rate, wall time, attempts, wasted attempts (those after the first, of requests
that failed in the end), retries of permanent errors, the longest an attempt was let run,
attempts that timed out, attempts per success (the load on the service for each useful
answer) and wall time per success.

An unanswered request holds a step slot, and its batch, for the whole timeout: under every
fixed policy the batch lasts at least the fixed timeout. ``timeout: auto`` cuts it after
1 s (the successful calls took milliseconds; 1 s is the rule's floor) and ``retry: auto``
retries it at once, so ``auto``'s batch ends with the longest restart it waits out (about
2.5 s after that request's first failure). ``auto-retry`` shows the split: the learned
retries alone beat every fixed policy on success and waste, but under the fixed timeout
they end no sooner than ``none``: waiting out a restart can never be quicker than giving
up on it.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from playloop.dsl.flow import AutoTimeout
from playloop.dsl.normalize import AUTO_MAX_ATTEMPTS, AUTO_MAX_DELAY
from playloop.learn.errors import is_permanent
from playloop.learn.retry import COVER_SHARE, FIRST_SHARE, backoff, planned_attempts
from playloop.learn.snapshot import Snapshot
from playloop.learn.timeouts import P50_MARGIN, P99_MARGIN, choose_timeout
from playloop.runtime import Engine

#: seconds a 429 asks the client to wait (``Retry-After``)
RETRY_AFTER = 0.03
#: seconds a restarting dependency takes (from the first failure), the shortest and longest
RESTART = (0.5, 2.5)
#: seconds every answer takes: from LATENCY[0] to LATENCY[1]
LATENCY = (0.002, 0.006)
#: the status that stands for no answer at all: the server holds the request (a backend
#: that died behind the balancer) until the client gives up or HANG seconds pass
NO_ANSWER = 0
HANG = 30.0
#: seconds the fixed policies (and the learning period) let an attempt run: what a person
#: sets without history, six times below the http tool's default of 30 s
FIXED_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Fault:
    """What the server does for one request key: ``status`` for the first ``times``
    attempts (forever when ``times`` and ``clears_after`` are None), or until
    ``clears_after`` seconds after the key's first failure; then 200."""

    status: int
    times: int | None
    clears_after: float | None = None


def fault_of(key: str) -> Fault | None:
    """The fault schedule: 47% fine, 3% no answer to the first attempt, 16% 503 x1-4, 8%
    503 for 0.5-2.5 s, 8% 429 x1-2, 6% 400, 6% 404, 6% 500 forever (never recovers)."""
    h = zlib.crc32(key.encode())
    bucket = h % 100
    extra = (h >> 8) % 4
    if bucket < 47:
        return None
    if bucket < 50:
        return Fault(NO_ANSWER, 1)
    if bucket < 66:
        return Fault(503, 1 + extra)
    if bucket < 74:
        low, high = RESTART
        return Fault(503, None, clears_after=round(low + ((h >> 12) % 15) * (high - low) / 14, 2))
    if bucket < 82:
        return Fault(429, 1 + extra % 2)
    if bucket < 88:
        return Fault(400, None)
    if bucket < 94:
        return Fault(404, None)
    return Fault(500, None)


class FlakyServer:
    """``GET /r/<namespace>/<key>``: answers by ``fault_of(key)`` after 2-6 ms, counting
    attempts per (namespace, key). A 429 retried before its ``Retry-After`` passed is a 429
    again; a time-based 503 clears ``clears_after`` seconds after the key's first failure;
    ``NO_ANSWER`` holds the request, unanswered, until the client gives up."""

    def __init__(self, latency: tuple[float, float] = LATENCY) -> None:
        self.latency = latency
        self.attempts: dict[tuple[str, str], int] = {}
        self.not_before: dict[tuple[str, str], float] = {}
        self.throttled: dict[tuple[str, str], int] = {}
        self.first_failure: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        self.released = threading.Event()  # set at exit: requests held without answer end
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client's pool reuses connections
            disable_nagle_algorithm = True  # else the body waits 40 ms for a delayed ACK

            def do_GET(self) -> None:
                status, headers = server.answer(self.path)
                if status == NO_ANSWER:
                    server.released.wait(HANG)  # the client times out first, or we stop
                    self.close_connection = True
                    return
                body = b'{"ok": true}' if status == 200 else b'{"error": "flaky"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default 5 drops connects under load: 1 s stalls

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, path: str) -> tuple[int, dict[str, str]]:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "r":
            return 404, {}
        key = (parts[1], parts[2])
        with self.lock:
            n = self.attempts.get(key, 0) + 1
            self.attempts[key] = n
        low, high = self.latency
        if high > 0:
            spread = zlib.crc32(f"{parts[2]}:{n}".encode()) % 1000 / 1000
            time.sleep(low + (high - low) * spread)
        fault = fault_of(parts[2])
        now = time.monotonic()
        with self.lock:
            if fault is None:
                return 200, {}
            if fault.status == 429:
                wait = {"Retry-After": f"{RETRY_AFTER:g}"}
                if now < self.not_before.get(key, 0.0):
                    return 429, wait  # too early: does not count towards passing
                served = self.throttled.get(key, 0)
                if served >= (fault.times or 0):
                    return 200, {}
                self.throttled[key] = served + 1
                self.not_before[key] = now + RETRY_AFTER
                return 429, wait
            if fault.clears_after is not None:
                first = self.first_failure.setdefault(key, now)
                return (200, {}) if now - first >= fault.clears_after else (fault.status, {})
            if fault.times is not None and n > fault.times:
                return 200, {}
            return fault.status, {}

    def __enter__(self) -> FlakyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


PATH = "bench/flaky"
#: executions started per second in the learning period: history builds up under a steady
#: load, not one burst (whose queueing would pass for slow recoveries)
TRAIN_RATE = 50.0
POLICIES = ("none", "fixed3", "fixed10", "auto", "auto-retry")
#: the policies that learn: they run on the learning period's playbook path
LEARNING = ("auto", "auto-retry")
RETRIES = {
    "none": "",
    "fixed3": "    retry: {attempts: 3, delay: 20ms, backoff: exponential}\n",
    "fixed10": "    retry: {attempts: 10, delay: 20ms, backoff: exponential, max_delay: 200ms}\n",
    "auto": "    retry: {auto: true, delay: 20ms}\n",
    # retry: auto under the fixed timeout: what the learned retries do on their own
    "auto-retry": "    retry: {auto: true, delay: 20ms}\n",
    # the learning period's policy (not compared): generous, so every recovery is seen
    "explore": "    retry: {attempts: 10, delay: 20ms, backoff: exponential, max_delay: 500ms}\n",
}


def playbook(policy: str, path: str, fixed_timeout: float = FIXED_TIMEOUT) -> str:
    """A one-step playbook: an ``http`` call under ``policy``'s retries and timeout
    (``timeout: auto`` for ``auto``, ``fixed_timeout`` seconds for the others)."""
    timeout = "auto" if policy == "auto" else f"{fixed_timeout:g}"
    return (
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        f"metadata: {{name: flaky_{policy.replace('-', '_')}, path: {path}}}\n"
        "workflow:\n"
        "  - step: call\n"
        '    tool: {kind: http, url: "{{ workload.url }}"}\n'
        f"    timeout: {timeout}\n" + RETRIES[policy]
    )


@dataclass(slots=True)
class Result:
    policy: str
    requests: int = 0
    succeeded: int = 0
    wall: float = 0.0
    attempts: int = 0
    wasted: int = 0
    permanent_retries: int = 0
    retries: int = 0
    timed_out: int = 0
    #: the longest an attempt was let run (seconds): the fixed timeout, or the learned one
    timeout: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.requests if self.requests else 0.0

    @property
    def ms_per_success(self) -> float | None:
        return self.wall * 1000 / self.succeeded if self.succeeded else None

    @property
    def attempts_per_success(self) -> float | None:
        return self.attempts / self.succeeded if self.succeeded else None


def run_policy(
    engine: Engine,
    folder: Path,
    policy: str,
    path: str,
    base: str,
    keys: list[str],
    ns: str,
    rate: float | None = None,
    fixed_timeout: float = FIXED_TIMEOUT,
) -> Result:
    """Run one execution per key, all at once (or ``rate`` started per second)."""
    file = folder / f"{ns}.yaml"
    file.write_text(playbook(policy, path, fixed_timeout))
    flow = engine.load(file)
    result = Result(policy=policy, requests=len(keys))
    started = time.perf_counter()
    ids = []
    for i, key in enumerate(keys):
        if rate is not None:
            time.sleep(max(0.0, started + i / rate - time.perf_counter()))
        ids.append(engine.start(flow, {"url": f"{base}/r/{ns}/{key}"}))
    summaries = [engine.wait(i, timeout=300) for i in ids]
    result.wall = time.perf_counter() - started
    for execution_id, summary in zip(ids, summaries, strict=True):
        ok = summary["status"] == "completed"
        result.succeeded += ok
        attempts = 0
        last_class = ""
        for event in engine.events(execution_id):
            if event.event_type == "step.started":
                attempts += 1
                learned = (event.meta or {}).get("timeout")
                seconds = learned["seconds"] if learned else fixed_timeout
                result.timeout = max(result.timeout, float(seconds))
            elif event.event_type in ("step.failed", "step.timed_out"):
                result.timed_out += event.event_type == "step.timed_out"
                last_class = str((event.meta or {}).get("error_class"))
            elif event.event_type == "step.retrying":
                result.retries += 1
                result.permanent_retries += is_permanent(last_class)
        result.attempts += attempts
        if not ok:
            result.wasted += attempts - 1
    return result


@dataclass(slots=True)
class Run:
    """A benchmark run: the results in policy order, and what the learning period taught."""

    results: list[Result]
    learned: Snapshot


def run(
    *,
    requests: int = 400,
    train: int = 300,
    db: str | None = None,
    home: Path | None = None,
    train_rate: float = TRAIN_RATE,
    fixed_timeout: float = FIXED_TIMEOUT,
) -> Run:
    """Learn, then run every policy on the same requests."""
    with tempfile.TemporaryDirectory(prefix="playloop-flaky-") as tmp:
        folder = Path(tmp)
        with FlakyServer() as server, Engine(home or folder / "home", db=db) as engine:
            # the learning period: other requests, the learning policies' path
            run_policy(
                engine, folder, "explore", PATH + "/auto", server.url,
                [f"train{i}" for i in range(train)], "train", rate=train_rate,
                fixed_timeout=fixed_timeout,
            )  # fmt: skip
            learned = engine.stats.refresh()
            keys = [f"req{i}" for i in range(requests)]
            results = []
            for policy in POLICIES:
                path = f"{PATH}/{policy}"
                if policy in LEARNING:
                    engine.stats.refresh()
                    path = f"{PATH}/auto"
                evaluated = run_policy(
                    engine, folder, policy, path, server.url, keys, policy,
                    fixed_timeout=fixed_timeout,
                )  # fmt: skip
                results.append(evaluated)
            return Run(results, learned)


def _figure(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: list[Result]) -> Table:
    t = Table(title="retry policies against a flaky service (same requests for each)")
    columns = ("policy", "success", "wall s", "attempts", "wasted", "permanent retries")
    more = ("timeout s", "timed out", "attempts / success", "ms / success")
    for col in (*columns, *more):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for r in results:
        t.add_row(
            r.policy,
            f"{r.success_rate:.1%}",
            f"{r.wall:.2f}",
            str(r.attempts),
            str(r.wasted),
            str(r.permanent_retries),
            f"{r.timeout:g}",
            str(r.timed_out),
            _figure(r.attempts_per_success, 2),
            _figure(r.ms_per_success, 1),
        )
    return t


def plan_table(learned: Snapshot) -> Table:
    """What ``auto`` plans per error class from the learning period's statistics: the
    attempts and waits ``learn.retry`` chooses within ``retry: auto``'s default bounds."""
    t = Table(title="what auto learned (the learning period's statistics)")
    columns = ("class", "retried", "passed", "attempts", "recovery p10 / p98 ms", "waits ms")
    for col in columns:
        t.add_column(col, justify="left" if col == "class" else "right")
    step = learned.step(f"{PATH}/auto", "call")
    for name, c in sorted(step.classes.items()) if step else ():
        counts = (name, str(c.retried), str(c.retry_successes))
        if is_permanent(name):
            t.add_row(*counts, "1", "-", "permanent: no retry")
            continue
        if c.retry_successes == 0:
            t.add_row(*counts, "1", "-", "never passed: no retry")
            continue
        attempts = planned_attempts(c, AUTO_MAX_ATTEMPTS)
        plan = backoff(c, attempts - 1, AUTO_MAX_DELAY)
        waits = " ".join(f"{w * 1000:.0f}" for w in plan[0]) if plan else "-"
        recovery = f"{c.recovery_at(FIRST_SHARE):.0f} / {c.recovery_at(COVER_SHARE):.0f}"
        t.add_row(*counts, str(attempts), recovery, waits)
    return t


def timeout_line(learned: Snapshot) -> str:
    """What ``timeout: auto`` chooses from the learning period's durations, and why."""
    seconds, why = choose_timeout(
        learned, playbook=f"{PATH}/auto", step="call", bounds=AutoTimeout()
    )
    if why["source"] != "history":
        return f"timeout: auto -> {seconds:g} s (no history: {why['samples']} runs)"
    raw = max(why["p99_ms"] * P99_MARGIN, why["p50_ms"] * P50_MARGIN)
    return (
        f"timeout: auto -> {seconds:g} s: {why['samples']} successful calls, p50 "
        f"{why['p50_ms']:.1f} ms, p99 {why['p99_ms']:.1f} ms; max(p99*{P99_MARGIN:g}, "
        f"p50*{P50_MARGIN:g}) = {raw:.0f} ms, clamped to [{why['min']:g}, {why['max']:g}] s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument(
        "--fixed-timeout", type=float, default=FIXED_TIMEOUT,
        help="seconds an attempt may run under the fixed policies and the learning period",
    )  # fmt: skip
    args = parser.parse_args()
    done = run(
        requests=args.requests, train=args.train, db=args.db, fixed_timeout=args.fixed_timeout
    )
    console = Console(width=max(Console().width, 130))
    console.print(plan_table(done.learned))
    console.print(timeout_line(done.learned))
    console.print(table(done.results))


if __name__ == "__main__":
    main()
