"""Publish committed events from the outbox to NATS JetStream, in order, exactly once.

``OutboxPublisher`` is a background thread with its own asyncio loop (nats-py is asyncio).
It claims the database's one publisher slot, makes sure the stream exists, then repeats:
read a batch of outbox rows, publish each with ``Nats-Msg-Id: <event_id>``, wait for the
acks, delete the acked rows. Appends never wait for it: the outbox row is written in the
append's own transaction, and the publisher only reads and deletes committed rows.

Why the order holds, per execution: one execution's events are appended one transaction
after another under the orchestrator's lock, so the outbox always holds a gap-free run of
its seqs; the batch query returns them in seq order without a gap; one publisher per
database (the claim) sends them, each only after the previous one's ack. A failed publish
stops that execution's run for this batch, so nothing later is sent before it.

Why exactly once: a row is deleted only after its ack (at least once), and a row published
again (a crash between ack and delete, a lost ack) carries the same message id, which
JetStream drops as a duplicate within the stream's duplicate window (at most once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from playloop.engine.events import Event
from playloop.export.outbox import Outbox, OutboxRow
from playloop.store.base import subject_for

log = logging.getLogger(__name__)

ENV_URL = "PLAYLOOP_NATS_URL"
DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_STREAM = "PLAYLOOP_EVENTS"
SUBJECTS = "playloop.events.>"
MSG_ID = "Nats-Msg-Id"


# --- stream and subjects ----------------------------------------------------------------


async def ensure_stream(
    js: JetStreamContext,
    name: str = DEFAULT_STREAM,
    *,
    duplicate_window: float = 120.0,
    max_age: float | None = None,
) -> None:
    """Create the stream, or widen an existing one to our subjects and duplicate window."""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        config = StreamConfig(
            name=name,
            subjects=[SUBJECTS],
            storage=StorageType.FILE,
            duplicate_window=duplicate_window,
            max_age=max_age,
        )
        await js.add_stream(config)
        return
    config = info.config
    subjects = list(config.subjects or [])
    if SUBJECTS not in subjects or (config.duplicate_window or 0) < duplicate_window:
        config.subjects = subjects if SUBJECTS in subjects else [*subjects, SUBJECTS]
        config.duplicate_window = max(config.duplicate_window or 0, duplicate_window)
        await js.update_stream(config)


def subject_filter(playbook: str | None = None, execution_id: int | None = None) -> str:
    """The subject filter for a playbook path (and execution), as ``subject_for`` names them.

    Without a playbook the filter is every event: an execution alone cannot be matched by a
    subject wildcard (its playbook path has any number of tokens), so callers filter it.
    """
    if not playbook:
        return SUBJECTS
    subject = subject_for(Event(execution_id=0, seq=0, event_type="", playbook_path=playbook))
    prefix = subject.rsplit(".", 1)[0]
    return f"{prefix}.{execution_id if execution_id is not None else '*'}"


def fit_payload(payload: bytes, limit: int) -> bytes:
    """The event JSON, with its bulky fields dropped when it exceeds the server's max payload.

    A message NATS refuses can never be published and would hold its execution's later
    events back for ever, so an oversized event goes out as its envelope, marked
    ``"truncated": true``; the full event stays in the event table.
    """
    if len(payload) <= limit:
        return payload
    data: dict[str, Any] = orjson.loads(payload)
    for key in ("context", "result", "meta"):
        data[key] = None
    data["truncated"] = True
    if data.get("error_message"):
        data["error_message"] = str(data["error_message"])[:1000]
    smaller = orjson.dumps(data)
    if len(smaller) <= limit:
        return smaller
    keep = ("event_id", "execution_id", "seq", "event_type", "playbook_path", "step_name")
    return orjson.dumps({key: data.get(key) for key in keep} | {"truncated": True})


# --- the publisher ------------------------------------------------------------------------


@dataclass(slots=True)
class PublisherStats:
    published: int = 0  # acked as new messages
    duplicates: int = 0  # acked as already in the stream (published before an earlier crash)
    batches: int = 0
    failures: int = 0  # connection or publish failures (each followed by a back-off)
    connected: bool = False
    last_error: str | None = None


class OutboxPublisher:
    """A background thread that moves outbox rows to JetStream; ``start``/``notify``/``stop``."""

    def __init__(
        self,
        store: object,
        nats_url: str,
        *,
        stream: str = DEFAULT_STREAM,
        batch_size: int = 500,
        poll_interval: float = 0.1,
        linger: float = 0.05,
        duplicate_window: float = 120.0,
        max_age: float | None = None,
        publish_timeout: float = 5.0,
        max_backoff: float = 2.0,
    ) -> None:
        self.outbox = Outbox(store)
        self.nats_url = nats_url
        self.stream = stream
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.linger = linger
        self.duplicate_window = duplicate_window
        self.max_age = max_age
        self.publish_timeout = publish_timeout
        self.max_backoff = max_backoff
        self.stats = PublisherStats()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stop_deadline = float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._idle = False  # waiting for a notify (set and cleared by the publisher's loop)
        self._more = False  # notified since the publisher last read the outbox

    @classmethod
    def start_if_configured(cls, store: object, **options: Any) -> OutboxPublisher | None:
        """A started publisher when ``$PLAYLOOP_NATS_URL`` is set, else None."""
        url = os.environ.get(ENV_URL)
        if not url:
            return None
        if not getattr(store, "outbox_enabled", True):
            log.warning("%s is set but the store writes no outbox rows", ENV_URL)
        return cls(store, url, **options).start()

    # --- control (any thread) ------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is None:
            self._stopping.clear()
            self._stop_deadline = float("inf")
            self._thread = threading.Thread(
                target=self._main, name="playloop-nats-publisher", daemon=True
            )
            self._thread.start()
        return self

    def notify(self) -> None:
        """Events were just appended: wake the publisher if it is idle.

        Cheap enough to call after every commit: while the publisher is busy it only marks
        that there is more, which the publisher checks before it goes idle again.
        """
        self._more = True
        if self._idle:
            self._idle = False
            self._wake_loop()

    def _wake_loop(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the publisher has stopped
            loop.call_soon_threadsafe(wake.set)

    def stop(self, timeout: float = 10.0) -> None:
        """Publish what waits (while NATS answers, within ``timeout``), then stop and release."""
        if self._thread is None:
            return
        self._stop_deadline = time.monotonic() + timeout * 0.8
        self._stopping.set()
        self._wake_loop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the NATS publisher did not stop within %.1f s", timeout)
            return
        self._thread = None

    def wait_published(self, timeout: float) -> bool:
        """Block until the outbox is empty (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.outbox.count() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the thread ------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception:  # _run handles its failures; this is a bug, and must not pass silently
            log.exception("the NATS publisher stopped on an unexpected error")
        finally:
            self._loop = self._wake = None
            try:
                self.outbox.close()
            except Exception as exc:  # the store closed first: its lock is gone with it
                log.warning("could not release the publisher claim: %s", exc)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        failures = 0
        while not self._stopping.is_set():
            try:
                if not self.outbox.claim.acquire():
                    await self._sleep(1.0, wakeable=False)  # another process publishes here
                    continue
                await self._session()
                failures = 0
            except Exception as exc:
                failures += 1
                self._failed(exc, first=failures == 1)
                await self._sleep(min(self.max_backoff, 0.05 * 2**failures), wakeable=False)

    async def _session(self) -> None:
        """One connection: publish until stopped; raise on any NATS or database failure."""
        nc = await nats.connect(
            self.nats_url,
            allow_reconnect=False,  # a new connection per failure: nothing stale is resent
            connect_timeout=2,
            name="playloop-outbox-publisher",
            error_cb=_quiet,
        )
        try:
            js = nc.jetstream()
            await ensure_stream(
                js, self.stream, duplicate_window=self.duplicate_window, max_age=self.max_age
            )
            if not self.stats.connected:
                log.info(
                    "publishing events to NATS at %s, stream %s (%d waiting)",
                    self.nats_url,
                    self.stream,
                    self.outbox.count(),
                )
            self.stats.connected = True
            await self._pump(nc, js)
        finally:
            await nc.close()

    async def _pump(self, nc: NatsClient, js: JetStreamContext) -> None:
        while True:
            if self._stopping.is_set() and time.monotonic() >= self._stop_deadline:
                return
            if not self.outbox.claim.acquire():
                raise RuntimeError("lost the publisher claim")
            self._more = False
            rows = self.outbox.batch(self.batch_size)
            if not rows:
                if self._stopping.is_set():
                    return
                await self._idle_wait()
                continue
            acked, error = await self._publish(js, rows, nc.max_payload - 1024)
            self.outbox.delete(acked)
            self.stats.batches += 1
            if error is not None:
                raise error
            if len(rows) < self.batch_size:
                # caught up: let appends gather for a moment rather than chase every commit
                # with a read, a publish and a delete (each takes the store's lock)
                await self._sleep(self.linger, wakeable=False)

    async def _publish(
        self, js: JetStreamContext, rows: list[OutboxRow], limit: int
    ) -> tuple[list[int], Exception | None]:
        """Publish a batch: executions side by side, each one's rows one ack at a time."""
        runs: dict[int, list[OutboxRow]] = {}
        for row in rows:
            runs.setdefault(row.execution_id, []).append(row)
        acked: list[int] = []
        errors: list[Exception] = []

        async def publish_run(run: list[OutboxRow]) -> None:
            for row in run:
                try:
                    ack = await js.publish(
                        row.subject,
                        fit_payload(row.payload, limit),
                        timeout=self.publish_timeout,
                        headers={MSG_ID: str(row.event_id)},
                    )
                except Exception as exc:
                    errors.append(exc)
                    return  # nothing after a failed event of this execution
                acked.append(row.event_id)
                if ack.duplicate:
                    self.stats.duplicates += 1
                else:
                    self.stats.published += 1

        await asyncio.gather(*(publish_run(run) for run in runs.values()))
        return acked, errors[0] if errors else None

    async def _idle_wait(self) -> None:
        """Wait for a notify, or ``poll_interval`` (appends by other processes notify nobody)."""
        self._idle = True
        if not self._more:  # a notify between the read and now would be lost otherwise
            await self._sleep(self.poll_interval)
        self._idle = False

    async def _sleep(self, seconds: float, *, wakeable: bool = True) -> None:
        """Wait ``seconds``; ``notify`` cuts an idle wait short, never a back-off (appends
        would otherwise turn a NATS outage into a reconnect attempt per commit)."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)
            if self._wake.is_set():
                self._wake.clear()
                if wakeable:
                    return

    def _failed(self, exc: Exception, *, first: bool) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if first:
            log.warning(
                "NATS publishing at %s paused (%s); events wait in the outbox",
                self.nats_url,
                self.stats.last_error,
            )
        else:
            log.debug("NATS publishing still paused: %s", self.stats.last_error)
        if self.stats.connected:
            self.stats.connected = False


async def _quiet(exc: Exception) -> None:
    """nats-py logs every connection error with a traceback by default; the publisher reports."""
    log.debug("nats: %s", exc)
