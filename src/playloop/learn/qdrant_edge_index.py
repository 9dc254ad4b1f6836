"""Qdrant Edge shards, one per collection, shared by the processes of one playloop home.

Layout: ``<home>/vectors/<collection>/`` holds ``shard/`` (the Qdrant Edge shard),
``meta.json`` (model, dimension, BM25 set-up), ``lock`` and, while a process waits for the
shard, a ``want.<pid>.<n>`` file.

A Qdrant Edge shard has one owner at a time (its files are locked while it is open; a
second opener fails with ``WouldBlock``) and no read-only mode. So processes take turns:
a process opens the shard under an exclusive ``flock`` on ``lock`` and keeps it open while
nobody else asks for it; a process that wants it writes its ``want`` file and waits on the
``flock``; the owner sees the ``want`` file after its current operation (or within 20 ms
when idle: a watcher thread) and closes the shard (flushed), releasing the lock. The wait
is bounded (``wait`` seconds, then ``IndexBusy``); the lock error never reaches a caller.
Every upsert is flushed before it returns, so the shard runs without a write-ahead log
(which makes reopening fast); the index is a cache of the event log anyway.

A hand-over costs a flush, a close and a load (a few hundred ms even for a small shard on
a busy machine), too slow for a read that has a budget (a worker's similar-failure
lookup). So reads go through the owner: while a process holds a shard it answers other
processes' searches and counts on a Unix socket (Linux's abstract namespace, named after
the shard's folder: no path-length limit, nothing left behind by a crash; only processes
of the same user are answered). A process that needs a read asks the owner first, and
takes the shard itself only when nobody holds it (or the owner is letting it go); writes
always take the shard.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from playloop.learn.vectors import (
    DENSE,
    SPARSE,
    CollectionMeta,
    Found,
    IndexBusy,
    Stored,
    Where,
)

if TYPE_CHECKING:
    from qdrant_edge import EdgeShard, Filter

#: how often an owner looks for a process that wants its shard, when idle
WATCH_SECONDS = 0.02
#: optimise (build HNSW) at the end of an upsert call once this many points were written
#: since the last time (searching fewer unindexed points by brute force takes a few ms)
OPTIMIZE_AFTER = 20_000
_tokens = itertools.count()
_FRAME = struct.Struct(">I")


def edge_filter(where: Where | None) -> Filter | None:
    from qdrant_edge import FieldCondition, Filter, MatchAny, MatchValue

    if not where:
        return None
    conditions: list[Any] = []
    for key, value in where.items():
        if isinstance(value, list | tuple | set):
            conditions.append(FieldCondition(key=key, match=MatchAny(any=list(value))))
        else:
            conditions.append(FieldCondition(key=key, match=MatchValue(value=value)))
    return Filter(must=conditions)


class Shard:
    """One collection's shard, opened on demand and handed over to other processes."""

    def __init__(self, folder: Path, wait: float) -> None:
        self.folder = folder
        self.path = folder / "shard"
        self.wait = wait
        self.token = f"{os.getpid()}.{next(_tokens)}"
        self.mutex = threading.RLock()
        self._fd: int | None = None
        self._shard: EdgeShard | None = None
        self._server: _ReadServer | None = None
        self.address = _address(folder)
        self.written = 0

    def exists(self) -> bool:
        return (self.path / "edge_config.json").is_file()

    @contextlib.contextmanager
    def use(self, create: CollectionMeta | None = None) -> Iterator[EdgeShard | None]:
        """The open shard (None when it does not exist and ``create`` is None)."""
        with self.mutex:
            try:
                if self._shard is None:
                    self._acquire()
                    self._open(create)
                    self.serve_reads()
                yield self._shard
            finally:
                if self._shard is None or self.someone_waits():
                    self.release()

    def someone_waits(self) -> bool:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return False
        mine = f"want.{self.token}"
        for name in names:
            if name.startswith("want.") and name != mine:
                pid = name.split(".")[1]
                if pid.isdigit() and _alive(int(pid)):
                    return True
                with contextlib.suppress(OSError):
                    (self.folder / name).unlink()  # left by a process that died waiting
        return False

    def _acquire(self) -> None:
        if self._fd is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd, self.folder / f"want.{self.token}", self.wait, self.folder)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _open(self, create: CollectionMeta | None) -> None:
        from qdrant_edge import EdgeShard

        if self.exists():
            deadline = time.monotonic() + self.wait
            while True:  # the previous owner may still be letting go of the files
                try:
                    self._shard = EdgeShard.load(str(self.path))
                    return
                except Exception as e:
                    if "WouldBlock" not in str(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        if create is not None:
            self._shard = EdgeShard.create(str(self.path), _config(create.dim))
            # whole or not at all: other threads and processes read it without the lock
            staged = self.folder / f"meta.json.{os.getpid()}.{threading.get_ident()}"
            staged.write_text(json.dumps(create.as_dict()) + "\n")
            os.replace(staged, self.folder / "meta.json")

    def serve_reads(self) -> None:
        """Answer other processes' reads while this process holds the shard (if it can)."""
        if self._shard is not None and self._server is None and self.address is not None:
            self._server = _ReadServer.start(self, self.address)

    def ask(self, request: dict[str, Any]) -> Any:
        """A read answered by the process that holds the shard: its answer, or None when
        nobody holds the shard, it is this process, or the owner is letting it go. An owner
        that does not answer within ``wait`` seconds is ``IndexBusy``."""
        if self.address is None or self._shard is not None:
            return None
        try:
            body = orjson.dumps(request)
        except TypeError:  # not JSON (a ``where`` with a set): read it here
            return None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(self.wait)
            try:
                conn.connect(self.address)
            except OSError:  # nobody listens: nobody holds the shard
                return None
            try:
                _send(conn, body)
                reply = orjson.loads(_receive(conn))
            except TimeoutError:
                raise IndexBusy(
                    f"the process holding the vector index {self.folder} did not answer "
                    f"within {self.wait:g} s"
                ) from None
            except (OSError, ValueError):
                return None
        return reply.get("ok") if isinstance(reply, dict) else None

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run another process's read on the open shard (``gone``: not open any more)."""
        with self.mutex:
            edge = self._shard
            if edge is None:
                return {"gone": True}
            op = request.get("op")
            if op == "count":
                return {"ok": _count(edge)}
            if op in ("dense", "sparse"):
                found = _query(
                    edge,
                    _query_of(request),
                    int(request["limit"]),
                    request.get("where"),
                    bool(request.get("with_vector")),
                )
                return {"ok": [[f.id, f.score, f.payload, f.dense] for f in found]}
        return {"error": f"unknown read {op!r}"}

    def release(self) -> None:
        with self.mutex:
            if self._server is not None:
                server, self._server = self._server, None
                server.close()  # before the lock: the next owner binds the same address
            if self._shard is not None:
                shard, self._shard = self._shard, None
                try:
                    shard.flush()
                finally:
                    shard.close()
            if self._fd is not None:
                fd, self._fd = self._fd, None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def release_if_wanted(self) -> None:
        """Hand the shard over if another process waits and nobody here uses it."""
        if self._shard is None or not self.mutex.acquire(blocking=False):
            return
        try:
            if self._shard is not None and self.someone_waits():
                self.release()
        finally:
            self.mutex.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _address(folder: Path) -> str | None:
    """The shard's read socket: in Linux's abstract namespace (None elsewhere: no reads
    through the owner, every process takes the shard as it needs it)."""
    if not sys.platform.startswith("linux"):
        return None
    digest = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:40]
    return f"\0playloop-shard-{digest}"


def _send(conn: socket.socket, body: bytes) -> None:
    conn.sendall(_FRAME.pack(len(body)) + body)


def _receive(conn: socket.socket) -> bytes:
    header = _exactly(conn, _FRAME.size)
    return _exactly(conn, _FRAME.unpack(header)[0])


def _exactly(conn: socket.socket, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = conn.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("the other end closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class _ReadServer:
    """Answers other processes' reads of a shard this process holds (one at a time)."""

    def __init__(self, shard: Shard, listener: socket.socket) -> None:
        self.shard = shard
        self.listener = listener
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name="playloop-shard-reads", daemon=True
        )

    @classmethod
    def start(cls, shard: Shard, address: str) -> _ReadServer | None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + 0.2
        while True:  # the previous owner may still be closing its socket
            try:
                listener.bind(address)
                break
            except OSError:
                if time.monotonic() > deadline:
                    listener.close()
                    return None  # others take the shard in turn, as without a server
                time.sleep(0.005)
        listener.listen(16)
        server = cls(shard, listener)
        server._thread.start()
        return server

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            # a reader that went away or sent garbage falls back to taking the shard
            with conn, contextlib.suppress(Exception):
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != os.getuid():
            return  # the abstract namespace has no file permissions: only our own user
        request = orjson.loads(_receive(conn))
        reply = self.shard.answer(request) if isinstance(request, dict) else {"error": "bad"}
        _send(conn, orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY))

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.listener.close()


def _lock(fd: int, want: Path, wait: float, folder: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    want.touch()
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise IndexBusy(
                        f"the vector index {folder} was held by another process for more "
                        f"than {wait:g} s"
                    ) from None
                time.sleep(0.005)
    finally:
        with contextlib.suppress(OSError):
            want.unlink()


def _config(dim: int) -> Any:
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeSparseVectorParams,
        EdgeVectorParams,
        Modifier,
    )

    return EdgeConfig(
        vectors={DENSE: EdgeVectorParams(size=dim, distance=Distance.Cosine)},
        sparse_vectors={SPARSE: EdgeSparseVectorParams(modifier=Modifier.Idf)},
        wal_enabled=False,
    )


class EdgeBackend:
    """The ``Backend`` on Qdrant Edge shards under ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path, *, wait: float = 30.0) -> None:
        self.folder = folder
        self.wait = wait
        self._shards: dict[str, Shard] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None

    def _shard(self, collection: str) -> Shard:
        with self._lock:
            shard = self._shards.get(collection)
            if shard is None:
                shard = self._shards[collection] = Shard(self.folder / collection, self.wait)
            if self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch, name="playloop-vectors-watch", daemon=True
                )
                self._watcher.start()
            return shard

    def _watch(self) -> None:
        while not self._closed.wait(WATCH_SECONDS):
            for shard in list(self._shards.values()):
                shard.release_if_wanted()

    def meta(self, collection: str) -> CollectionMeta | None:
        try:
            data = json.loads((self.folder / collection / "meta.json").read_text())
        except FileNotFoundError:
            return None
        return CollectionMeta.from_dict(data)

    def ensure(self, collection: str, meta: CollectionMeta, indexed: Sequence[str]) -> None:
        from qdrant_edge import PayloadSchemaType, UpdateOperation

        shard = self._shard(collection)
        with shard.use(create=meta) as edge:
            assert edge is not None
            for name in indexed:
                edge.update(UpdateOperation.create_field_index(name, PayloadSchemaType.Keyword))

    def upsert(self, collection: str, points: Sequence[Stored]) -> None:
        from qdrant_edge import Point, SparseVector, UpdateOperation

        shard = self._shard(collection)
        with shard.use() as edge:
            if edge is None:
                raise FileNotFoundError(f"collection {collection!r} was dropped meanwhile")
            edge.update(
                UpdateOperation.upsert_points(
                    [
                        Point(p.id, {DENSE: p.dense, SPARSE: SparseVector(*p.sparse)}, p.payload)
                        for p in points
                    ]
                )
            )
            edge.flush()
            shard.written += len(points)

    def settle(self, collection: str) -> None:
        """After an upsert call: build the indexes once enough points wait for them."""
        shard = self._shard(collection)
        if shard.written >= OPTIMIZE_AFTER:
            self.optimize(collection)

    def vectors_by_hash(self, collection: str, hashes: Sequence[str]) -> dict[str, list[float]]:
        from qdrant_edge import ScrollRequest

        if not hashes:
            return {}
        with self._shard(collection).use() as edge:
            if edge is None:
                return {}
            records, _ = edge.scroll(
                ScrollRequest(
                    limit=4 * len(hashes),
                    filter=edge_filter({"text_hash": list(hashes)}),
                    with_payload=["text_hash"],
                    with_vector=[DENSE],
                )
            )
        out: dict[str, list[float]] = {}
        for r in records:
            vector = r.vector
            if r.payload and isinstance(vector, dict) and isinstance(vector.get(DENSE), list):
                out[str(r.payload["text_hash"])] = vector[DENSE]  # type: ignore[assignment]
        return out

    def _read(self, collection: str, request: dict[str, Any], query: Any) -> list[Found]:
        shard = self._shard(collection)
        remote = shard.ask(request)
        if remote is not None:
            return [
                Found(int(i), float(score), payload, dense) for i, score, payload, dense in remote
            ]
        limit, where = int(request["limit"]), request.get("where")
        with shard.use() as edge:
            if edge is None:
                return []
            return _query(edge, query, limit, where, bool(request.get("with_vector")))

    def dense(
        self, collection: str, vector: list[float], limit: int, where: Where | None
    ) -> list[Found]:
        request = {"op": "dense", "vector": vector, "limit": limit, "where": where}
        return self._read(collection, request, _query_of(request))

    def sparse(
        self,
        collection: str,
        sparse: tuple[list[int], list[float]],
        limit: int,
        where: Where | None,
        with_vector: bool,
    ) -> list[Found]:
        request = {
            "op": "sparse",
            "indices": list(sparse[0]),
            "values": list(sparse[1]),
            "limit": limit,
            "where": where,
            "with_vector": with_vector,
        }
        return self._read(collection, request, _query_of(request))

    def count(self, collection: str) -> int:
        shard = self._shard(collection)
        remote = shard.ask({"op": "count"})
        if remote is not None:
            return int(remote)
        with shard.use() as edge:
            return 0 if edge is None else _count(edge)

    def drop(self, collection: str) -> None:
        shard = self._shard(collection)
        with shard.mutex:
            shard._acquire()
            try:
                if shard._shard is not None:
                    shard._shard.close()
                    shard._shard = None
                shutil.rmtree(shard.path, ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    (shard.folder / "meta.json").unlink()
                shard.written = 0
            finally:
                shard.release()

    def optimize(self, collection: str) -> None:
        shard = self._shard(collection)
        with shard.use() as edge:
            if edge is not None:
                edge.optimize()
                shard.written = 0

    def close(self) -> None:
        self._closed.set()
        if self._watcher is not None:
            self._watcher.join()
        for shard in self._shards.values():
            shard.release()


def _query_of(request: dict[str, Any]) -> Any:
    """The Qdrant Edge query of a read request (``dense`` or ``sparse``)."""
    from qdrant_edge import Query, SparseVector

    if request["op"] == "dense":
        return Query.Nearest([float(x) for x in request["vector"]], using=DENSE)
    sparse = SparseVector(
        [int(i) for i in request["indices"]], [float(v) for v in request["values"]]
    )
    return Query.Nearest(sparse, using=SPARSE)


def _query(
    edge: EdgeShard, query: Any, limit: int, where: Where | None, with_vector: bool
) -> list[Found]:
    from qdrant_edge import QueryRequest

    points = edge.query(
        QueryRequest(
            limit=limit,
            query=query,
            filter=edge_filter(where),
            with_payload=True,
            with_vector=[DENSE] if with_vector else False,
        )
    )
    found = []
    for p in points:
        vector = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
        dense = vector if isinstance(vector, list) else None
        found.append(Found(int(p.id), p.score, dict(p.payload or {}), dense))  # type: ignore[arg-type]
    return found


def _count(edge: EdgeShard) -> int:
    from qdrant_edge import CountRequest

    return int(edge.count(CountRequest(exact=True)))
