"""The secret key and the redactor, without a database."""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from playloop.secrets.crypto import ENV, DecryptError, SecretKeyError, load_cipher
from playloop.secrets.redact import MASK, Redactor


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


def test_the_key_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_cipher(tmp_path, create=True)
    second = load_cipher(tmp_path, create=True)
    assert first.created and not second.created
    key = tmp_path / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert second.decrypt(first.encrypt(b"x"), "it") == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temporary file left


def test_processes_racing_to_make_the_key_agree_on_one(tmp_path: Path) -> None:
    ciphers = []
    threads = [
        threading.Thread(target=lambda: ciphers.append(load_cipher(tmp_path, create=True)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    token = ciphers[0].encrypt(b"same")
    assert all(c.decrypt(token, "it") == b"same" for c in ciphers)
    assert sum(c.created for c in ciphers) == 1


def test_the_environment_key_wins_and_no_file_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, Fernet.generate_key().decode())
    cipher = load_cipher(tmp_path, create=True)
    assert cipher.source == f"${ENV}" and not (tmp_path / "secret.key").exists()


def test_bad_and_missing_keys_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SecretKeyError, match="does not exist"):
        load_cipher(tmp_path, create=False)
    monkeypatch.setenv(ENV, "not-a-key")
    with pytest.raises(SecretKeyError, match="is not a Fernet key"):
        load_cipher(tmp_path, create=True)


def test_another_key_cannot_decrypt(tmp_path: Path) -> None:
    token = load_cipher(tmp_path / "a", create=True).encrypt(b"secret")
    other = load_cipher(tmp_path / "b", create=True)
    with pytest.raises(DecryptError, match="credential 'x' cannot be decrypted") as caught:
        other.decrypt(token, "credential 'x'")
    assert str(tmp_path / "b" / "secret.key") in str(caught.value)
    with pytest.raises(DecryptError):
        other.decrypt("not ascii: é", "credential 'x'")


def test_redact_masks_registered_secrets_at_any_depth() -> None:
    r = Redactor()
    r.add("s3cret-value", "abc", None)  # too short to mask: "abc" stays
    value = {"a": ["x s3cret-value y", ("s3cret-value",)], "b": 1, "abc": None, "s3cret-value": 2}
    assert r.redact(value) == {"a": [f"x {MASK} y", (MASK,)], "b": 1, "abc": None, MASK: 2}


def test_a_dsn_is_masked_whole_and_its_password_alone() -> None:
    r = Redactor()
    r.add_dsn("postgresql://bob:pa55word@db:5432/x")
    assert r.redact_text("url postgresql://bob:pa55word@db:5432/x end") == f"url {MASK} end"
    assert r.redact_text("the pa55word leaked") == f"the {MASK} leaked"
    r.add_dsn("host=db user=bob password=conninfo-pw")
    assert r.redact_text("conninfo-pw") == MASK


def test_url_passwords_are_masked_even_unregistered() -> None:
    r = Redactor()
    assert r.redact_text("postgres://u:p%40ss@h/d") == f"postgres://u:{MASK}@h/d"
    assert r.redact_text("https://:tok@h") == f"https://:{MASK}@h"
    for untouched in ("http://host:8080/path@x", "mailto:bob@example.com", "a@b:c"):
        assert r.redact_text(untouched) == untouched


def test_credential_values_skip_public_fields() -> None:
    r = Redactor()
    r.add_values(
        {"user": "postgres", "host": "db.local", "password": "pw-1234", "token": 12345678},
        public={"user", "host"},
    )
    assert r.redact_text("postgres@db.local pw-1234 12345678") == f"postgres@db.local {MASK} {MASK}"


def test_the_log_filter_masks_messages_args_and_tracebacks() -> None:
    r = Redactor()
    r.add("tok-9876")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "using %s", ("tok-9876",), None)
    try:
        raise ValueError("tok-9876")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert r.filter.filter(record)
    assert record.getMessage() == f"using {MASK}"
    assert record.exc_info is None and record.exc_text and "tok-9876" not in record.exc_text
    assert f"ValueError: {MASK}" in record.exc_text


def test_install_masks_child_loggers_and_uninstall_restores(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = Redactor()
    r.add("child-secret")
    factory = logging.getLogRecordFactory()
    r.install()
    r.install()  # idempotent
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("playloop.deep.child").info("x child-secret")
            logging.getLogger("elsewhere").info("y child-secret")
    finally:
        r.uninstall()
    assert logging.getLogRecordFactory() is factory
    assert r.filter not in logging.getLogger("playloop").filters
    assert [rec.getMessage() for rec in caplog.records] == [f"x {MASK}", f"y {MASK}"]


def test_key_file_permissions_do_not_depend_on_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_cipher(tmp_path, create=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
