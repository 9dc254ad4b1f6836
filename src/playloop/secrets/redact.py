"""Keep secrets out of events and logs: a process-wide registry of secret strings.

Every credential value that is decrypted (``CredentialStore.get``) and every DSN password a
tool connects with is registered here; ``redact`` then replaces each occurrence with
``***`` in a string or in nested dicts and lists. Two patterns are scrubbed even when
nothing is registered, so a DSN written into a playbook never reaches an event whole: the
password of a URL (``scheme://user:PASSWORD@host``) and a conninfo ``password=...``.

Strings shorter than ``MIN_SECRET_LENGTH`` are not registered: replacing every ``ab`` in every
log line would make logs unreadable while protecting a password that offers no protection.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "***"
MIN_SECRET_LENGTH = 4

#: ``scheme://user:password@`` -> ``scheme://user:***@`` (a URL's password has no ``/?#``)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s/?#]+(?P<at>@)")
#: libpq's ``password=secret`` or ``password='se cret'``
_CONNINFO_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'][^\s]*)")


def dsn_password(dsn: str) -> str | None:
    """The password in a PostgreSQL URL or conninfo string, if it has one."""
    from psycopg import conninfo
    from psycopg.errors import ProgrammingError

    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except ProgrammingError:  # malformed: keep what the patterns can find
        return None
    return str(password) if password else None


class Redactor:
    """A registry of secret strings and the function that masks them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._filter = RedactingFilter(self)
        self._previous_factory: Callable[..., logging.LogRecord] | None = None

    def add(self, *secrets: object) -> None:
        """Register secret values (non-strings by their text; short ones are ignored)."""
        new = {str(s) for s in secrets if s is not None and len(str(s)) >= MIN_SECRET_LENGTH}
        with self._lock:
            if new <= self._secrets:
                return
            self._secrets |= new
            # longest first, so a DSN is masked whole rather than around its password
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_dsn(self, dsn: str) -> None:
        """Register a DSN and the password inside it."""
        self.add(dsn, dsn_password(dsn))

    def add_values(self, values: Mapping[str, Any], public: Iterable[str] = ()) -> None:
        """Register every value of a credential except the fields named ``public``."""
        skip = set(public)
        for key, value in values.items():
            if key in skip or value is None:
                continue
            if key == "dsn":
                self.add_dsn(str(value))
            elif isinstance(value, Mapping):  # an HTTP credential's headers: their values
                self.add_values(value)
            else:
                self.add(value)

    def redact_text(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "@" in text:
            text = _URL_PASSWORD.sub(rf"\g<head>{MASK}\g<at>", text)
        if "password" in text:
            text = _CONNINFO_PASSWORD.sub(rf"\g<head>{MASK}", text)
        return text

    def redact(self, value: Any) -> Any:
        """``value`` with every secret masked, in strings at any depth of dicts and lists."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.redact(v) for v in value)
        return value

    @property
    def filter(self) -> logging.Filter:
        """The ``logging.Filter`` that masks this registry's secrets in log records."""
        return self._filter

    def install(self) -> None:
        """Mask secrets in every log record of the process, once (calling again is harmless).

        The filter goes on the ``playloop`` logger. A logger's filters only see records
        logged on that very logger, not those its children (``playloop.tools.python``)
        propagate to its handlers, so the log record factory is wrapped too: records of any
        logger are masked as they are made, before any handler sees them.
        """
        logger = logging.getLogger("playloop")
        if self._filter not in logger.filters:
            logger.addFilter(self._filter)
        with self._lock:
            if self._previous_factory is not None:
                return
            previous = logging.getLogRecordFactory()
            self._previous_factory = previous

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            self._filter.filter(record)
            return record

        logging.setLogRecordFactory(factory)

    def uninstall(self) -> None:
        """Undo ``install`` (for tests)."""
        logging.getLogger("playloop").removeFilter(self._filter)
        with self._lock:
            previous, self._previous_factory = self._previous_factory, None
        if previous is not None:
            logging.setLogRecordFactory(previous)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, exception text and stack; never drops a record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's to report, not ours
            return True
        masked = self.redactor.redact_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            masked = self.redactor.redact_text(text)
            if masked != text:
                # handlers that render exc_info themselves would show the secret
                record.exc_info, record.exc_text = None, masked
        elif record.exc_text:
            record.exc_text = self.redactor.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact_text(record.stack_info)
        return True


#: the process's registry: what ``CredentialStore.get`` and the tools register into
REDACTOR = Redactor()


def redact(value: Any) -> Any:
    """``REDACTOR.redact``."""
    return REDACTOR.redact(value)
