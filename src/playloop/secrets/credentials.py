"""Named credentials: values encrypted at rest in ``noetl.credential``, decrypted on use.

A credential is a name (what a playbook's ``auth:`` says), a kind (``postgres``, ...) and a
dict of values (``dsn``, or ``host``/``port``/``user``/``password``/``dbname``). The values are
stored as Fernet ciphertext of ``{"name", "kind", "values"}``: the name inside is checked on
decryption, so a ciphertext copied onto another credential's row is refused. Every value
decrypted in this process, except the connection fields in ``PUBLIC_FIELDS``, is registered
with the ``Redactor`` so it is masked in events and logs.
"""

from __future__ import annotations

import builtins
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from playloop.secrets.crypto import Cipher, DecryptError, load_cipher
from playloop.secrets.redact import REDACTOR
from playloop.store.generic import execute, fetch

#: values that name where to connect, not how to prove who you are: never masked (masking a
#: user called ``postgres`` would mask every mention of the tool kind)
PUBLIC_FIELDS = frozenset(
    {"host", "hostaddr", "port", "user", "dbname", "sslmode", "connect_timeout", "application_name"}
)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


class CredentialError(Exception):
    """A credential cannot be stored or read."""


class UnknownCredential(CredentialError, LookupError):
    """No credential has this name."""


class CredentialInfo(NamedTuple):
    """What ``list`` shows: never the values."""

    name: str
    kind: str
    updated_at: str


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise CredentialError(
            f"invalid credential name {name!r}: use letters, digits, '_', '.' and '-' "
            "(at most 100, not starting with '.' or '-')"
        )
    return name


def _iso(value: Any) -> str:
    """A timestamp read back as text (SQLite) or ``datetime`` (PostgreSQL), as ISO-8601 UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return str(value)


class CredentialStore:
    """Credentials in ``store``'s database, encrypted with the key of ``home`` (see ``crypto``)."""

    def __init__(self, store: object, home: Path) -> None:
        self.store = store
        self.home = Path(home)
        self._cipher: Cipher | None = None

    def cipher(self, *, create: bool = False) -> Cipher:
        if self._cipher is None:
            self._cipher = load_cipher(self.home, create=create)
        return self._cipher

    def set(self, name: str, kind: str, values: dict[str, Any]) -> None:
        """Store (or replace) a credential; creates the key file on first use."""
        check_name(name)
        if not kind:
            raise CredentialError(f"credential '{name}' needs a kind")
        if not values:
            raise CredentialError(f"credential '{name}' has no values")
        plaintext = orjson.dumps({"name": name, "kind": kind, "values": values})
        secret = self.cipher(create=True).encrypt(plaintext)
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        execute(
            self.store,
            "credential_upsert",
            {"name": name, "kind": kind, "secret": secret, "now": now},
        )
        REDACTOR.add_values(values, PUBLIC_FIELDS)

    def get(self, name: str) -> dict[str, Any]:
        """The credential's values, decrypted; its secret values are registered for masking."""
        rows = fetch(self.store, "credential_get", {"name": name})
        if not rows:
            raise UnknownCredential(f"no credential named '{name}'")
        _kind, secret = rows[0]
        what = f"credential '{name}'"
        plain = orjson.loads(self.cipher().decrypt(str(secret), what))
        if not isinstance(plain, dict) or plain.get("name") != name:
            raise DecryptError(f"{what}: the stored ciphertext belongs to another credential")
        values: dict[str, Any] = dict(plain.get("values") or {})
        REDACTOR.add_values(values, PUBLIC_FIELDS)
        return values

    def list(self) -> builtins.list[CredentialInfo]:
        """Every credential's name, kind and last update, by name; never their values."""
        return [
            CredentialInfo(str(name), str(kind), _iso(updated_at))
            for name, kind, updated_at in fetch(self.store, "credential_list")
        ]

    def delete(self, name: str) -> None:
        if execute(self.store, "credential_delete", {"name": name}) == 0:
            raise UnknownCredential(f"no credential named '{name}'")
