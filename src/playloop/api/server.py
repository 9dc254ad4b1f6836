"""Serve the API with uvicorn on a socket bound here, so the real port is known at once."""

from __future__ import annotations

import signal
import socket

import uvicorn
from fastapi import FastAPI

#: seconds open streams get to finish when the server is asked to stop
GRACEFUL_SECONDS = 5


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``port`` 0 picks a free one: see ``sock.getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says IPPROTO_TCP, and without it a kept-alive connection waits ~40 ms (Nagle
    # against delayed ACKs) on every response
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def make_server(app: FastAPI, sock: socket.socket, *, log_level: str = "info") -> uvicorn.Server:
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        lifespan="off",
    )
    return uvicorn.Server(config)


def serve(app: FastAPI, sock: socket.socket, *, log_level: str = "info") -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully and return (main thread only).

    uvicorn re-raises the stopping signal once it has shut down, through the handlers that
    were in place before it started; with the server's own handler there, the re-raised
    signal is a no-op, so a graceful stop exits 0 instead of dying by the signal."""
    server = make_server(app, sock, log_level=log_level)
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in stops}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
