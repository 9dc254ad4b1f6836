"""Signed, expiring, single-use callback URLs.

A step that waits for a callback gets ``{{ callback_url }}``:
``<public url>/api/callbacks/<token>``, where the token is the callback id and its expiry,
base64url-encoded, then ``.`` and an HMAC-SHA256 over them. Verifying checks the
signature first (a tampered token is refused before anything is read from it), then the
expiry; single use is the engine's part: a callback whose wait is over is refused (409).
The signing key derives from the secret key (``$PLAYLOOP_SECRET_KEY`` or the home's key
file), so every process of one installation signs and verifies alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path

from playloop.secrets.crypto import ENV, key_path, load_cipher

#: stands in for the URL while the engine renders a step; the worker puts the signed URL in
PLACEHOLDER = "__PLAYLOOP_CALLBACK_URL__"
PUBLIC_URL_ENV = "PLAYLOOP_PUBLIC_URL"


class CallbackRefused(Exception):
    """A callback URL that does not verify: ``status`` 403 (tampered) or 410 (expired)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _key(home: Path) -> bytes:
    secret = os.environ.get(ENV)
    if not secret:
        load_cipher(home, create=True)  # makes the key file on first use
        secret = key_path(home).read_text(encoding="ascii").strip()
    return hashlib.sha256(b"playloop callbacks\x00" + secret.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(home: Path, callback_id: str, expires: float) -> str:
    body = _b64(json.dumps({"i": callback_id, "x": int(expires)}, separators=(",", ":")).encode())
    mac = hmac.new(_key(home), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def verify(home: Path, token: str, now: float | None = None) -> str:
    """The callback id of a valid, unexpired token; ``CallbackRefused`` otherwise."""
    body, _, mac = token.partition(".")
    expected = hmac.new(_key(home), body.encode(), hashlib.sha256).hexdigest()
    if not body or not hmac.compare_digest(mac, expected):
        raise CallbackRefused(403, "the callback URL's signature does not match: it was altered")
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        callback_id, expires = str(data["i"]), float(data["x"])
    except (ValueError, KeyError, TypeError):
        raise CallbackRefused(403, "the callback URL is malformed") from None
    if (now if now is not None else time.time()) > expires:
        raise CallbackRefused(
            410,
            f"the callback URL expired at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(expires))}",
        )
    return callback_id


def callback_url(home: Path, callback_id: str, expires: float) -> str:
    base = os.environ.get(PUBLIC_URL_ENV, "http://127.0.0.1:8082").rstrip("/")
    return f"{base}/api/callbacks/{sign(home, callback_id, expires)}"
