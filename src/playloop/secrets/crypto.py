"""The key that encrypts credentials at rest (Fernet: AES-128-CBC with an HMAC-SHA256 tag).

The key is ``$PLAYLOOP_SECRET_KEY`` (a url-safe base64 Fernet key, as
``Fernet.generate_key()`` makes) when set, else the file ``<home>/secret.key``, created with
mode 0600 the first time a credential is stored. Every process that reads credentials needs
the same key: set the variable on servers and workers that share a database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

ENV = "PLAYLOOP_SECRET_KEY"
KEY_FILE = "secret.key"


class SecretKeyError(Exception):
    """The secret key is missing or malformed."""


class DecryptError(Exception):
    """A stored secret cannot be decrypted with the current key."""


@dataclass(frozen=True, slots=True)
class Cipher:
    fernet: Fernet
    #: where the key came from, for messages: ``$PLAYLOOP_SECRET_KEY`` or the key file's path
    source: str
    #: the key file was created by this call
    created: bool = False

    def encrypt(self, plaintext: bytes) -> str:
        return self.fernet.encrypt(plaintext).decode("ascii")

    def decrypt(self, token: str, what: str) -> bytes:
        """``what`` names the secret in the error (for example ``credential 'warehouse'``)."""
        try:
            return self.fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise DecryptError(
                f"{what} cannot be decrypted with the current key (from {self.source}): it was "
                f"stored with another key; set {ENV} to that key, or store the secret again"
            ) from None


def key_path(home: Path) -> Path:
    return home / KEY_FILE


def load_cipher(home: Path, *, create: bool) -> Cipher:
    """The cipher of ``$PLAYLOOP_SECRET_KEY``, else of the key file (made when ``create``)."""
    env_key = os.environ.get(ENV)
    if env_key:
        return Cipher(_fernet(env_key.strip(), f"${ENV}"), f"${ENV}")
    path = key_path(home)
    created = False
    if not path.exists():
        if not create:
            raise SecretKeyError(
                f"no secret key: {ENV} is not set and {path} does not exist, so no stored "
                "credential can be read; set the key the credentials were stored with"
            )
        created = _create_key_file(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(f"cannot read the secret key file {path}: {exc}") from None
    return Cipher(_fernet(text, str(path)), str(path), created)


def _fernet(key: str, source: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise SecretKeyError(
            f"the secret key from {source} is not a Fernet key (32 random bytes, url-safe "
            "base64; make one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`)"
        ) from None


def _create_key_file(path: Path) -> bool:
    """Write a new key to ``path`` (mode 0600) unless another process just did; True if we did.

    The key is written to a private temporary file and hard-linked into place, so a reader
    never sees a half-written key and two processes racing agree on one key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
