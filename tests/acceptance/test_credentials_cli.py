"""``playloop credentials set|list|delete`` as a subprocess: the password never comes back out.

Runs the group as ``python -m playloop.cli_credentials``, the same Typer app ``playloop
credentials`` mounts.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playloop.secrets.credentials import CredentialStore
from playloop.store.open import open_store


def credentials(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli_credentials", *args],
        env={k: v for k, v in env.items() if k != "PLAYLOOP_SECRET_KEY"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_set_list_delete_never_show_the_password(
    playloop_env: dict[str, str],
    db_url: str,
    tmp_path: Path,
    db_query: Callable[..., list[tuple[Any, ...]]],
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    dsn = f"postgresql://loader:{password}@db.example:5432/warehouse"
    done = credentials(playloop_env, "set", "warehouse", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert "credential warehouse saved (postgres)" in done.stdout
    assert "created a new secret key" in done.stderr
    key = tmp_path / "home" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    other = f"pw-{uuid.uuid4().hex}"
    done = credentials(
        playloop_env,
        "set", "reporting", "--host", "db.example", "--port", "5433", "--user", "reader",
        "--dbname", "reports", "--password-stdin",
        stdin=other + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "created a new secret key" not in done.stderr  # the same key, reused

    listed = credentials(playloop_env, "list")
    assert listed.returncode == 0, listed.stderr
    assert "warehouse" in listed.stdout and "reporting" in listed.stdout
    as_json = credentials(playloop_env, "list", "--json")
    rows = json.loads(as_json.stdout)
    assert [(r["name"], r["kind"]) for r in rows] == [
        ("reporting", "postgres"),
        ("warehouse", "postgres"),
    ]
    assert set(rows[0]) == {"name", "kind", "updated_at"}
    everything = "".join(p.stdout + p.stderr for p in (done, listed, as_json)) + json.dumps(
        db_query("SELECT name, kind, secret FROM noetl.credential")
    )
    for secret in (password, other, dsn):
        assert secret not in everything

    store = open_store(db_url)
    try:
        store_values = CredentialStore(store, tmp_path / "home")
        assert store_values.get("warehouse") == {"dsn": dsn}
        assert store_values.get("reporting") == {
            "host": "db.example", "port": 5433, "user": "reader", "password": other,
            "dbname": "reports",
        }  # fmt: skip
    finally:
        store.close()

    deleted = credentials(playloop_env, "delete", "warehouse")
    assert deleted.returncode == 0 and "credential warehouse deleted" in deleted.stdout
    again = credentials(playloop_env, "delete", "warehouse")
    assert again.returncode == 2 and "no credential named 'warehouse'" in again.stderr
    assert [r["name"] for r in json.loads(credentials(playloop_env, "list", "--json").stdout)] == [
        "reporting"
    ]


def test_the_dsn_can_come_from_stdin(
    playloop_env: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    dsn = f"host=db.example user=u password=pw-{uuid.uuid4().hex} dbname=d"
    done = credentials(playloop_env, "set", "piped", "--dsn", "-", stdin=dsn + "\n")
    assert done.returncode == 0, done.stderr
    store = open_store(db_url)
    try:
        assert CredentialStore(store, tmp_path / "home").get("piped") == {"dsn": dsn}
    finally:
        store.close()


def test_bad_input_is_a_clear_error(playloop_env: dict[str, str]) -> None:
    cases = [
        (("set", "x"), None, "give --dsn, or connection fields"),
        (("set", "x", "--password", "a", "--password-stdin"), "b\n", "not both"),
        (("set", "x", "--user", "u", "--password-stdin"), "", "no password on standard input"),
        (("set", "x", "--dsn", "postgresql://a:b@["), None, "not a valid PostgreSQL URL"),
        (("set", "../x", "--dsn", "postgresql://h/d"), None, "invalid credential name"),
    ]
    for args, stdin, message in cases:
        done = credentials(playloop_env, *args, stdin=stdin)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in " ".join(done.stderr.split()), (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert (
        "postgresql://a:b@["
        not in credentials(playloop_env, "set", "x", "--dsn", "postgresql://a:b@[").stderr
    )
