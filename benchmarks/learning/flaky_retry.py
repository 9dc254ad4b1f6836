"""Learned retries against a flaky service: ``retry: auto`` versus fixed policies.

    python -m benchmarks.learning.flaky_retry [--db URL] [--requests 200] [--train 200]

A real HTTP server on 127.0.0.1 fails requests by a fault schedule keyed per request (the
same request fails the same way under every policy): transient 503s that pass after 1-4
attempts, 429s with ``Retry-After`` that pass once it is honoured, 500s that never pass,
and permanent 400/404s. Each request is one execution of a one-step playbook (an ``http``
step). A learning period runs other requests (``--train``) under a 10-attempt policy with
the same playbook path as ``retry: auto``, so its statistics have history; then every
policy runs the same evaluation requests, one policy after another:

- ``none``: no retry;
- ``fixed3``: 3 attempts, exponential from 20 ms;
- ``fixed10``: 10 attempts, exponential from 20 ms, at most 200 ms;
- ``auto``: ``retry: {auto: true, max_attempts: 10, delay: 20ms, max_delay: 200ms}``.

Delays are milliseconds (the real thing's seconds, scaled down). Printed: success rate,
wall time, attempts, wasted attempts (retries of requests that failed in the end) and
retries of permanent errors.
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

from playloop.learn.errors import is_permanent
from playloop.runtime import Engine

#: seconds a 429 asks the client to wait (``Retry-After``)
RETRY_AFTER = 0.03


@dataclass(frozen=True, slots=True)
class Fault:
    """What the server does for one request key: ``status`` for the first ``times``
    attempts (forever when ``times`` is None), then 200."""

    status: int
    times: int | None


def fault_of(key: str) -> Fault | None:
    """The fault schedule: 55% fine, 20% 503 x1-4, 10% 429 x1-2, 5% 400, 5% 404, 5% 500
    forever (never recovers)."""
    h = zlib.crc32(key.encode())
    bucket = h % 100
    extra = (h >> 8) % 4
    if bucket < 55:
        return None
    if bucket < 75:
        return Fault(503, 1 + extra)
    if bucket < 85:
        return Fault(429, 1 + extra % 2)
    if bucket < 90:
        return Fault(400, None)
    if bucket < 95:
        return Fault(404, None)
    return Fault(500, None)


class FlakyServer:
    """``GET /r/<namespace>/<key>``: answers by ``fault_of(key)``, counting attempts per
    (namespace, key). A 429 retried before its ``Retry-After`` passed is a 429 again."""

    def __init__(self) -> None:
        self.attempts: dict[tuple[str, str], int] = {}
        self.not_before: dict[tuple[str, str], float] = {}
        self.throttled: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client's pool reuses connections
            disable_nagle_algorithm = True  # else the body waits 40 ms for a delayed ACK

            def do_GET(self) -> None:
                status, headers = server.answer(self.path)
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
        fault = fault_of(parts[2])
        now = time.monotonic()
        with self.lock:
            n = self.attempts.get(key, 0) + 1
            self.attempts[key] = n
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
            if fault.times is not None and n > fault.times:
                return 200, {}
            return fault.status, {}

    def __enter__(self) -> FlakyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


PATH = "bench/flaky"
RETRIES = {
    "none": "",
    "fixed3": "    retry: {attempts: 3, delay: 20ms, backoff: exponential}\n",
    "fixed10": ("    retry: {attempts: 10, delay: 20ms, backoff: exponential, max_delay: 200ms}\n"),
    "auto": "    retry: {auto: true, max_attempts: 10, delay: 20ms, max_delay: 200ms}\n",
}


def playbook(policy: str, path: str) -> str:
    return (
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        f"metadata: {{name: flaky_{policy}, path: {path}}}\n"
        "workflow:\n"
        "  - step: call\n"
        '    tool: {kind: http, url: "{{ workload.url }}", timeout: 5}\n' + RETRIES[policy]
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

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.requests if self.requests else 0.0


def run_policy(
    engine: Engine, folder: Path, policy: str, path: str, base: str, keys: list[str], ns: str
) -> Result:
    file = folder / f"{ns}.yaml"
    file.write_text(playbook(policy, path))
    flow = engine.load(file)
    result = Result(policy=policy, requests=len(keys))
    started = time.perf_counter()
    ids = [engine.start(flow, {"url": f"{base}/r/{ns}/{key}"}) for key in keys]
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
            elif event.event_type in ("step.failed", "step.timed_out"):
                last_class = str((event.meta or {}).get("error_class"))
            elif event.event_type == "step.retrying":
                result.retries += 1
                result.permanent_retries += is_permanent(last_class)
        result.attempts += attempts
        if not ok:
            result.wasted += attempts - 1
    return result


def benchmark(
    *, requests: int = 200, train: int = 200, db: str | None = None, home: Path | None = None
) -> list[Result]:
    """Learn, then run every policy on the same requests; the results in policy order."""
    with tempfile.TemporaryDirectory(prefix="playloop-flaky-") as tmp:
        folder = Path(tmp)
        with FlakyServer() as server, Engine(home or folder / "home", db=db) as engine:
            # the learning period: other requests, the auto playbook's path, 10 attempts
            run_policy(
                engine, folder, "fixed10", PATH + "/auto", server.url,
                [f"train{i}" for i in range(train)], "train",
            )  # fmt: skip
            keys = [f"req{i}" for i in range(requests)]
            results = []
            for policy in ("none", "fixed3", "fixed10", "auto"):
                if policy == "auto":
                    engine.stats.refresh()
                results.append(
                    run_policy(engine, folder, policy, f"{PATH}/{policy}", server.url, keys, policy)
                )
            return results


def table(results: list[Result]) -> Table:
    t = Table(title="retry policies against a flaky service (same requests for each)")
    for col in ("policy", "success", "wall s", "attempts", "wasted", "permanent retries"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for r in results:
        t.add_row(
            r.policy,
            f"{r.success_rate:.1%}",
            f"{r.wall:.2f}",
            str(r.attempts),
            str(r.wasted),
            str(r.permanent_retries),
        )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--train", type=int, default=200)
    args = parser.parse_args()
    results = benchmark(requests=args.requests, train=args.train, db=args.db)
    Console().print(table(results))


if __name__ == "__main__":
    main()
