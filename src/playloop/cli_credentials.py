"""``playloop credentials set|list|delete``: named credentials, encrypted at rest.

A password given as ``--password`` or inside ``--dsn`` shows in the shell's history and in
``ps``; ``--password-stdin`` and ``--dsn -`` read it from standard input instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

credentials_app = typer.Typer(
    help="Store, list and delete named credentials (encrypted at rest).", no_args_is_help=True
)

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL: postgresql://... or sqlite:///path (default: $PLAYLOOP_DB)."
    ),
]
HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="State directory, holding secret.key unless $PLAYLOOP_SECRET_KEY is set "
        "(default: $PLAYLOOP_HOME or ./.playloop).",
    ),
]


@credentials_app.callback()
def _credentials_group() -> None:
    """Keep the commands subcommands whatever their number."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print("[red]error:[/] ", end="", highlight=False)
    err.print(message, highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(code)


def _home(home: Path | None) -> Path:
    from playloop.runtime import default_home

    return home if home is not None else default_home()


def _open(home: Path, db: str | None, *, create: bool) -> Any:
    """The store; reading commands never create a SQLite database."""
    from playloop.secrets.redact import REDACTOR
    from playloop.store.open import database_url, is_postgres, open_store

    url = database_url(db, home)
    if not create and not is_postgres(url):
        path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite:"))
        if not path.exists():
            raise _fail(f"no playloop database at {path} (pass --home or --db)")
    try:
        return open_store(url)
    except Exception as exc:
        REDACTOR.add_dsn(url)
        raise _fail(REDACTOR.redact_text(f"cannot open the database {url}: {exc}")) from None


def _read_stdin(what: str) -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise _fail(f"no {what} on standard input")
    return value


@credentials_app.command("set")
def credentials_set(
    name: Annotated[str, typer.Argument(help="The name playbooks use (`auth: NAME`).")],
    dsn: Annotated[
        str | None,
        typer.Option(help="postgresql://user:password@host:port/dbname; '-' reads it from stdin."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Server host.")] = None,
    port: Annotated[int | None, typer.Option(help="Server port.")] = None,
    user: Annotated[str | None, typer.Option(help="User name.")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (prefer --password-stdin).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    dbname: Annotated[str | None, typer.Option(help="Database name.")] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            help="An HTTP header 'Name: value' a service needs (an approval's notify); repeat it."
        ),
    ] = None,
    token_stdin: Annotated[
        bool,
        typer.Option("--token-stdin", help="Read a bearer token for HTTP from standard input."),
    ] = False,
    kind: Annotated[
        str | None,
        typer.Option(
            help="What the credential is for (default: http with --header or "
            "--token-stdin, else postgres)."
        ),
    ] = None,
    db: DbOption = None,
    home: HomeOption = None,
) -> None:
    """Store a credential (replacing one of the same name), encrypted with the secret key.

    Give --dsn, or the connection fields (--host, --port, --user, --password or
    --password-stdin, --dbname); fields given with --dsn override the DSN's. For an HTTP
    service (an approval's `notify: {auth: NAME}`) give --header and/or --token-stdin.
    """
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.errors import ProgrammingError

    from playloop.secrets.credentials import CredentialError, CredentialStore
    from playloop.secrets.crypto import SecretKeyError

    if password is not None and password_stdin:
        raise _fail("give --password or --password-stdin, not both")
    if sum((dsn == "-", password_stdin, token_stdin)) > 1:
        raise _fail("only one of --dsn -, --password-stdin and --token-stdin can read stdin")
    if dsn == "-":
        dsn = _read_stdin("DSN")
    if password_stdin:
        password = _read_stdin("password")
    fields = {"host": host, "port": port, "user": user, "password": password, "dbname": dbname}
    values: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if dsn is not None:
        try:
            conninfo_to_dict(dsn)
        except ProgrammingError:
            raise _fail("--dsn is not a valid PostgreSQL URL or conninfo string") from None
        values = {"dsn": dsn, **values}
    http = _http_values(header or [], _read_stdin("token") if token_stdin else None)
    if http and values:
        raise _fail("give database fields or HTTP --header/--token-stdin, not both")
    values = values or http
    if not values:
        raise _fail(
            "give --dsn, or connection fields (--host, --user, --dbname, ...), or --header / "
            "--token-stdin for an HTTP service"
        )
    kind = kind or ("http" if http else "postgres")
    home_dir = _home(home)
    store = _open(home_dir, db, create=True)
    try:
        credentials = CredentialStore(store, home_dir)
        credentials.set(name, kind, values)
        cipher = credentials.cipher()
    except (CredentialError, SecretKeyError) as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    if cipher.created:
        err.print(
            f"created a new secret key in {cipher.source} (mode 0600): back it up, stored "
            "credentials cannot be read without it; processes elsewhere need it as "
            "$PLAYLOOP_SECRET_KEY",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    out.print(f"credential {name} saved ({kind})", highlight=False, markup=False)


def _http_values(headers: list[str], token: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    parsed: dict[str, str] = {}
    for text in headers:
        name, sep, value = text.partition(":")
        if not sep or not name.strip() or not value.strip():
            raise _fail(f"--header {text!r}: give 'Name: value'")
        parsed[name.strip()] = value.strip()
    if parsed:
        values["headers"] = parsed
    if token:
        values["token"] = token
    return values


@credentials_app.command("list")
def credentials_list(
    db: DbOption = None,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List credentials by name: their kind and last update, never their values."""
    from playloop.secrets.credentials import CredentialStore

    home_dir = _home(home)
    store = _open(home_dir, db, create=False)
    try:
        rows = CredentialStore(store, home_dir).list()
    finally:
        store.close()
    if as_json:
        sys.stdout.write(
            orjson.dumps([r._asdict() for r in rows], option=orjson.OPT_INDENT_2).decode()
        )
        sys.stdout.write("\n")
        return
    table = Table("name", "kind", "updated_at")
    for row in rows:
        table.add_row(row.name, row.kind, row.updated_at)
    out.print(table)


@credentials_app.command("delete")
def credentials_delete(
    name: Annotated[str, typer.Argument(help="The credential's name.")],
    db: DbOption = None,
    home: HomeOption = None,
) -> None:
    """Delete a credential: steps naming it fail from now on."""
    from playloop.secrets.credentials import CredentialStore, UnknownCredential

    home_dir = _home(home)
    store = _open(home_dir, db, create=False)
    try:
        CredentialStore(store, home_dir).delete(name)
    except UnknownCredential as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    out.print(f"credential {name} deleted", highlight=False, markup=False)


if __name__ == "__main__":  # until registered: python -m playloop.cli_credentials
    credentials_app()
