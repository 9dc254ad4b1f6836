"""Error classes: what kind of failure a step had, derived from the facts a tool reported.

A class is a short, stable key the statistics and learned retries group by. It is derived
from structured fields first (a timeout flag, an HTTP status, a PostgreSQL SQLSTATE, an
OS errno, the exception type) and from the message only for a few well-known patterns
(when a tool reported none of those fields, e.g. a user's code that printed the error):

- ``timeout``: the step ran past its timeout;
- ``cancelled``: a child execution (or the step) was cancelled;
- ``http.<status>``: an HTTP response's status (``http.503``, ``http.429``);
- ``sqlstate.<code>``: a PostgreSQL server error (``sqlstate.40001``);
- ``errno.<NAME>``: an OS error (``errno.ECONNREFUSED``);
- ``exc.<Type>``: anything else, by exception type (``exc.ValueError``).

The module is pure (no I/O), so ``engine.decide`` classifies outcomes itself.
"""

from __future__ import annotations

import errno as errno_module
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "TRANSIENT_ERRNOS",
    "classify",
    "is_permanent",
    "is_transient",
]

#: OS errors a later attempt may not see: the peer restarts, a route comes back
TRANSIENT_ERRNOS = frozenset(
    {
        "ECONNREFUSED",
        "ECONNRESET",
        "ECONNABORTED",
        "ETIMEDOUT",
        "EHOSTUNREACH",
        "ENETUNREACH",
        "ENETDOWN",
        "EPIPE",
        "EAGAIN",
        "EBUSY",
    }
)
#: HTTP statuses that say "try again later"
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
#: SQLSTATEs (and classes, two characters) worth retrying: serialization failures,
#: deadlocks, connection failures, too many connections, a server shutting down
_TRANSIENT_SQLSTATE = frozenset({"40001", "40P01", "53300", "57P01", "57P02", "57P03"})
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08"})
#: SQLSTATE classes that will fail the same way again: bad data, constraints, syntax,
#: privileges
_PERMANENT_SQLSTATE_CLASSES = frozenset({"22", "23", "28", "42"})
#: exception types (transport failures) worth retrying
_TRANSIENT_TYPES = frozenset(
    {
        "ConnectError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "WorkerDied",
    }
)
#: exception types that say the playbook, not the world, is wrong
_PERMANENT_TYPES = frozenset(
    {
        "ConfigError",
        "TemplateError",
        "LoopError",
        "InputError",
        "ResultError",
        "CredentialError",
        "PolicyFailed",
        "SyntaxError",
        "NameError",
        "InvalidURL",
        "UnsupportedProtocol",
    }
)

#: (pattern, class) tried in order on the message when no structured field says more
_MESSAGE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bconnection refused\b", re.I), "errno.ECONNREFUSED"),
    (re.compile(r"\bconnection reset by peer\b", re.I), "errno.ECONNRESET"),
    (re.compile(r"\bbroken pipe\b", re.I), "errno.EPIPE"),
    (re.compile(r"\bno route to host\b", re.I), "errno.EHOSTUNREACH"),
    (re.compile(r"\bnetwork is unreachable\b", re.I), "errno.ENETUNREACH"),
    (re.compile(r"\bcould not serialize access\b", re.I), "sqlstate.40001"),
    (re.compile(r"\bdeadlock detected\b", re.I), "sqlstate.40P01"),
    (re.compile(r"\bSQLSTATE[ =:]*([0-9A-Z]{5})\b"), "sqlstate.{0}"),
    (re.compile(r"^HTTP ([1-5]\d\d)\b"), "http.{0}"),
    (re.compile(r"\b(?:status(?: code)?|HTTP)[ =:]*([45]\d\d)\b", re.I), "http.{0}"),
    (re.compile(r"\btoo many requests\b", re.I), "http.429"),
    (re.compile(r"\bservice unavailable\b", re.I), "http.503"),
    (re.compile(r"\btimed out\b|\btimeout expired\b", re.I), "timeout"),
)
_HTTP_TYPE = re.compile(r"^HTTPError\.(\d{3})$")
_SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")


def classify(
    error_type: str | None,
    message: str | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    timed_out: bool = False,
) -> str:
    """The class of a failure from what the tool reported (see the module doc)."""
    facts = details or {}
    if timed_out or error_type == "TimeoutError":
        return "timeout"
    if error_type in ("ChildExecutionCancelled", "Cancelled", "CancelledError"):
        return "cancelled"
    status = facts.get("status_code")
    if isinstance(status, int) and not isinstance(status, bool):
        return f"http.{status}"
    sqlstate = facts.get("sqlstate")
    if isinstance(sqlstate, str) and _SQLSTATE.match(sqlstate):
        return f"sqlstate.{sqlstate}"
    number = facts.get("errno")
    if isinstance(number, str) and number.isupper():
        return f"errno.{number}"
    if isinstance(number, int) and number in errno_module.errorcode:
        return f"errno.{errno_module.errorcode[number]}"
    kind = error_type or ""
    match = _HTTP_TYPE.match(kind)
    if match:
        return f"http.{match.group(1)}"
    if kind.startswith("postgres.") and _SQLSTATE.match(kind[9:]):
        return f"sqlstate.{kind[9:]}"
    if message:
        for pattern, label in _MESSAGE_PATTERNS:
            found = pattern.search(message)
            if found:
                return label.format(*found.groups())
    return f"exc.{kind.split('.', 1)[0] or 'Error'}"


def is_transient(error_class: str) -> bool:
    """Known to pass: worth retrying with no history (5xx, 408, 425, 429, timeouts,
    connection errors, serialization failures and deadlocks)."""
    family, _, code = error_class.partition(".")
    if error_class == "timeout":
        return True
    if family == "http" and code.isdigit():
        return int(code) in _TRANSIENT_HTTP
    if family == "sqlstate":
        return code in _TRANSIENT_SQLSTATE or code[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if family == "errno":
        return code in TRANSIENT_ERRNOS
    return family == "exc" and code in _TRANSIENT_TYPES


def is_permanent(error_class: str) -> bool:
    """Known to fail the same way again: never retried automatically (4xx other than 408,
    425 and 429, 501, 505; bad SQL, data or constraints; playbook errors; cancellations)."""
    family, _, code = error_class.partition(".")
    if error_class == "cancelled":
        return True
    if family == "http" and code.isdigit():
        status = int(code)
        return (400 <= status < 500 and status not in _TRANSIENT_HTTP) or status in (501, 505)
    if family == "sqlstate":
        return code[:2] in _PERMANENT_SQLSTATE_CLASSES
    return family == "exc" and code in _PERMANENT_TYPES
