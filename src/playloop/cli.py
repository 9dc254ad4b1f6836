"""The ``playloop`` command."""

from __future__ import annotations

import getpass
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from playloop.cli_credentials import credentials_app
from playloop.cli_decisions import approve, decisions_app, override, reject
from playloop.cli_events_tail import tail
from playloop.cli_feedback import failures, feedback, resolve
from playloop.cli_generate import generate
from playloop.cli_learn import learn_app, search, similar
from playloop.cli_stats import stats, suggest
from playloop.cli_worker import db_app, worker_app, workers_app
from playloop.dsl.errors import PlaybookError
from playloop.engine.orchestrator import UnknownExecution
from playloop.store.base import StoreError

app = typer.Typer(
    name="playloop",
    help="Run NoETL playbooks as event-sourced executions that learn from their history.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
executions_app = typer.Typer(help="List, show and cancel executions.", no_args_is_help=True)
catalog_app = typer.Typer(help="Register and list playbooks in the catalog.", no_args_is_help=True)
server_app = typer.Typer(help="Run the HTTP API server.", no_args_is_help=True)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(executions_app, name="executions")
app.add_typer(catalog_app, name="catalog")
app.add_typer(server_app, name="server")
app.add_typer(token_app, name="token")


class _EventsGroup(TyperGroup):
    """``playloop events ID`` means ``playloop events show ID`` (both forms work)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # click.Context (vendored)
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


events_app = typer.Typer(
    cls=_EventsGroup,
    help="An execution's events (events ID), or the live NATS stream (events tail).",
    no_args_is_help=True,
)
app.add_typer(events_app, name="events")
events_app.command("tail")(tail)
app.add_typer(worker_app, name="worker")
app.add_typer(workers_app, name="workers")
app.add_typer(db_app, name="db")
app.add_typer(decisions_app, name="decisions")
app.add_typer(credentials_app, name="credentials")
app.command("approve")(approve)
app.command("reject")(reject)
app.command("override")(override)
app.command("feedback")(feedback)
app.command("resolve")(resolve)
app.command("failures")(failures)
app.command("stats")(stats)
app.command("suggest")(suggest)
app.command("similar")(similar)
app.command("search")(search)
app.add_typer(learn_app, name="learn")
app.command("generate")(generate)

err = Console(stderr=True)
out = Console()

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="State directory (default: $PLAYLOOP_HOME or ./.playloop)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL: postgresql://... or sqlite:///path "
        "(default: $PLAYLOOP_DB, else playloop.db in the home directory).",
    ),
]
ServerOption = Annotated[
    str | None,
    typer.Option("--server", help="Talk to a playloop server at this URL instead of a database."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="PLAYLOOP_TOKEN", help="API token for --server."),
]


def _home(home: Path | None) -> Path:
    from playloop.runtime import default_home

    return home if home is not None else default_home()


def _print_json(value: Any) -> None:
    sys.stdout.write(
        orjson.dumps(
            value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str
        ).decode()
    )
    sys.stdout.write("\n")


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def _execution_id(text: str) -> int:
    if not text.strip().isdigit():
        raise _fail(f"execution id must be a number, got {text!r}", 2)
    return int(text)


@app.command()
def run(
    file: Annotated[Path | None, typer.Argument(help="Playbook YAML file.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a workload key: k=v, a.b=v (v parsed as YAML)."),
    ] = None,
    payload: Annotated[
        str | None, typer.Option("--payload", help="JSON object merged into the workload.")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Resume an interrupted execution by id.")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Steps run at once.")] = 16,
    no_index: Annotated[
        bool,
        typer.Option(
            "--no-index",
            help="Do not update the vector index of failures and playbooks in the background "
            "(nor attach similar past failures to this run's failures).",
        ),
    ] = False,
) -> None:
    """Run a playbook to the end. Exit 0 on success, 1 on a failed execution, 2 on bad input."""
    from playloop.learn.resolutions import record_resolutions
    from playloop.progress import StepProgress
    from playloop.runtime import Engine, PlaybookNotFound
    from playloop.workload import BadOverride, build_overrides

    if file is None and resume is None:
        raise _fail("give a playbook FILE, or --resume ID", 2)
    try:
        overrides = build_overrides(set_ or [], payload)
    except BadOverride as exc:
        raise _fail(str(exc), 2) from None
    # one execution: the indexer in a thread (a child interpreter's start-up costs more)
    engine = Engine(_home(home), concurrency=concurrency, index=False if no_index else "thread")
    try:
        try:
            if resume is not None:
                execution_id = _execution_id(resume)
                flow = None
            else:
                assert file is not None
                flow = engine.load(file)
        except PlaybookError as exc:
            raise _fail(str(exc), 2) from None
        except PlaybookNotFound as exc:
            raise _fail(str(exc), 2) from None
        progress = None if as_json or not err.is_terminal else StepProgress(err)
        if progress is not None:
            engine.subscribe(progress.on_events)
            progress.__enter__()
        try:
            if flow is not None:
                summary = engine.run(flow, overrides, actor=getpass.getuser())
            else:
                summary = engine.resume(execution_id)
        except UnknownExecution as exc:
            raise _fail(str(exc), 2) from None
        finally:
            if progress is not None:
                progress.__exit__(None, None, None)
        # link this run's failures, and earlier runs' failures it got past, to what fixed them
        record_resolutions(engine, int(summary["execution_id"]))
    finally:
        engine.close()
    if as_json:
        _print_json(summary)
    else:
        _print_summary(summary)
    raise typer.Exit(0 if summary["status"] == "completed" else 1)


def _print_summary(summary: dict[str, Any]) -> None:
    status = summary["status"]
    color = "green" if status == "completed" else "red"
    out.print(
        f"execution [bold]{summary['execution_id']}[/] {summary['playbook_path']}: [{color}]{status}[/]"
        f" ({len(summary['steps'])} steps, {summary['events']} events)",
        highlight=False,
    )
    if summary.get("error"):
        e = summary["error"]
        out.print(
            f"  step '{e['step']}' failed: {e['type']}: {e['message']}",
            highlight=False,
            markup=False,
        )
    elif summary.get("result") is not None:
        out.print(
            "  result: " + json.dumps(summary["result"], default=str)[:500],
            highlight=False,
            markup=False,
        )


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="Playbook YAML file.")]) -> None:
    """Check a playbook without running it. Exit 2 with file:line:col errors when invalid."""
    from playloop.dsl.load import load_file

    try:
        flow = load_file(file)
    except PlaybookError as exc:
        raise _fail(str(exc), 2) from None
    except OSError as exc:
        raise _fail(f"{file}: {exc.strerror or exc}", 2) from None
    out.print(
        f"{file}: ok ({flow.path}, {len(flow.steps)} steps, entry '{flow.entry}')", highlight=False
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the playbook DSL (for editors)."""
    from playloop.dsl.schema import json_schema

    _print_json(json_schema())


@events_app.command("show")
def events(
    execution_id: Annotated[str, typer.Argument(help="Execution id.")],
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print an execution's events in order."""
    from playloop.engine.events import Event

    number = _execution_id(execution_id)
    if server is not None:
        with _client(server, token) as client:
            found = [Event.from_dict(e) for e in _remote(lambda: client.events(number))]
    else:
        store = _open_store(home, db)
        try:
            found = store.read_events(number)
        finally:
            store.close()
    if not found:
        raise _fail(f"no execution {execution_id}", 2)
    if as_json:
        _print_json([e.to_dict() for e in found])
        return
    table = Table("seq", "type", "step", "status", "attempt", "ms", "error", "created_at")
    for e in found:
        step = e.step_name or ""
        if e.iteration is not None:
            step += f"[{e.iteration}]"
        table.add_row(
            str(e.seq),
            e.event_type,
            step,
            e.status or "",
            "" if e.attempt is None else str(e.attempt),
            "" if e.duration_ms is None else str(e.duration_ms),
            (f"{e.error_type}: {e.error_message}" if e.error_type else "")[:80],
            e.created_at,
        )
    out.print(table)


def _sqlite_path(url: str) -> Path:
    return Path(
        url.removeprefix("sqlite:///")
        if url.startswith("sqlite:///")
        else url.removeprefix("sqlite:")
    )


def _redact(url: str) -> str:
    """The URL without its password (for messages)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _open_store(home: Path | None, db: str | None = None) -> Any:
    """The store named by ``--db``/``$PLAYLOOP_DB``, else the home's SQLite database, which
    must exist already (reading commands never create a database)."""
    from playloop.store.open import database_url, is_postgres, open_store

    url = database_url(db, _home(home))
    if not is_postgres(url):
        path = _sqlite_path(url)
        if not path.exists():
            hint = "pass --db" if db else "run a playbook first, or pass --home or --db"
            raise _fail(f"no playloop database at {path} ({hint})", 2)
    try:
        return open_store(url)
    except Exception as exc:  # a bad URL, a refused connection: say which database
        raise _fail(f"cannot open the database {_redact(url)}: {exc}", 2) from None


def _engine(home: Path | None, db: str | None, **options: Any) -> Any:
    from playloop.runtime import Engine
    from playloop.store.open import database_url

    try:
        return Engine(_home(home), db=db, **options)
    except Exception as exc:
        url = database_url(db, _home(home))
        raise _fail(f"cannot open the database {_redact(url)}: {exc}", 2) from None


def _client(server: str, token: str | None) -> Any:
    from playloop.api.client import ApiClient

    return ApiClient(server, token)


def _remote(call: Any) -> Any:
    """Run a client call; a refused request or an unreachable server exits 2 with its message."""
    from playloop.api.client import ClientError

    try:
        return call()
    except ClientError as exc:
        raise _fail(str(exc), 2) from None


def _execution_dict(r: Any) -> dict[str, Any]:
    return {
        "execution_id": str(r.execution_id),
        "playbook_path": r.playbook_path,
        "playbook_version": r.playbook_version,
        "status": r.status,
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "parent_execution_id": None
        if r.parent_execution_id is None
        else str(r.parent_execution_id),
    }


@executions_app.command("list")
def executions_list(
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    playbook: Annotated[str | None, typer.Option(help="Only this playbook path.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List executions, newest first."""
    if server is not None:
        with _client(server, token) as client:
            items = _remote(lambda: client.executions(status, playbook, limit))
        rows = [{k: item.get(k) for k in _EXECUTION_KEYS} for item in items]
    else:
        store = _open_store(home, db)
        try:
            found = store.list_executions(status=status, playbook=playbook, limit=limit)
        finally:
            store.close()
        rows = [_execution_dict(r) for r in found]
    if as_json:
        _print_json(rows)
        return
    table = Table("execution_id", "playbook", "version", "status", "started_at", "ended_at")
    for r in rows:
        table.add_row(
            r["execution_id"],
            r["playbook_path"],
            r["playbook_version"] or "",
            r["status"],
            r["started_at"],
            r["ended_at"] or "",
        )
    out.print(table)


_EXECUTION_KEYS = (
    "execution_id",
    "playbook_path",
    "playbook_version",
    "status",
    "started_at",
    "ended_at",
    "parent_execution_id",
)


@executions_app.command("show")
def executions_show(
    execution_id: Annotated[str, typer.Argument(help="Execution id.")],
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an execution's summary: status, steps, result."""
    from playloop.engine.state import fold
    from playloop.runtime import summarize

    number = _execution_id(execution_id)
    if server is not None:
        with _client(server, token) as client:
            summary = _remote(lambda: client.summary(number))
    else:
        store = _open_store(home, db)
        try:
            found = store.read_events(number)
        finally:
            store.close()
        if not found:
            raise _fail(f"no execution {execution_id}", 2)
        summary = summarize(fold(found))
    if as_json:
        _print_json(summary)
        return
    _print_summary(summary)
    table = Table("step", "status", "attempts", "duration_ms", "result")
    for name, st in summary["steps"].items():
        table.add_row(
            name,
            st["status"],
            str(st["attempts"]),
            "" if st["duration_ms"] is None else str(st["duration_ms"]),
            json.dumps(st["result"], default=str)[:60],
        )
    out.print(table)


@executions_app.command("cancel")
def executions_cancel(
    execution_id: Annotated[str, typer.Argument(help="Execution id.")],
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a running execution."""
    number = _execution_id(execution_id)
    if server is not None:
        with _client(server, token) as client:
            _remote(lambda: client.cancel(number))
    else:
        engine = _engine(home, db)
        try:
            engine.cancel(number, actor="cli")
        except UnknownExecution as exc:
            raise _fail(str(exc), 2) from None
        finally:
            engine.close()
    out.print(f"execution {execution_id} cancelled")


@app.command()
def sql(
    query: Annotated[
        str, typer.Argument(help="A read-only SQL query, e.g. SELECT ... FROM noetl.event")
    ],
    home: HomeOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run read-only SQL against the event store (tables: noetl.event, noetl.execution, ...)."""
    from playloop.store.open import database_url, is_postgres
    from playloop.store.sqlite import readonly_query

    url = database_url(db, _home(home))
    try:
        if is_postgres(url):
            store = _open_store(home, db)
            try:
                columns, rows = store.query(query)
            finally:
                store.close()
        else:
            columns, rows = readonly_query(_sqlite_path(url), query)
    except StoreError as exc:
        raise _fail(str(exc), 2) from None
    if as_json:
        _print_json([dict(zip(columns, row, strict=True)) for row in rows])
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


@catalog_app.command("register")
def catalog_register(
    file: Annotated[Path, typer.Argument(help="Playbook YAML file.")],
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Validate a playbook and store it in the catalog as a new version (if it changed)."""
    from playloop.runtime import PlaybookNotFound

    if server is not None:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"{file}: {getattr(exc, 'strerror', None) or exc}", 2) from None
        with _client(server, token) as client:
            entry = _remote(lambda: client.catalog_register(text, str(file)))
        out.print(f"registered {entry['path']} version {entry['version']}", highlight=False)
        return
    engine = _engine(home, db)
    try:
        flow = engine.load(file)
    except (PlaybookError, PlaybookNotFound) as exc:
        raise _fail(str(exc), 2) from None
    finally:
        engine.close()
    out.print(f"registered {flow.path} version {flow.version}", highlight=False)


@catalog_app.command("list")
def catalog_list(
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List catalog entries: path, version, content hash."""
    keys = ("path", "version", "content_hash", "source_file", "created_at")
    if server is not None:
        with _client(server, token) as client:
            items = _remote(client.catalog_list)
        entries = [{k: item.get(k) for k in keys} for item in items]
    else:
        store = _open_store(home, db)
        try:
            entries = [{k: getattr(e, k) for k in keys} for e in store.catalog_list()]
        finally:
            store.close()
    if as_json:
        _print_json(entries)
        return
    table = Table("path", "version", "hash", "source_file", "created_at")
    for e in entries:
        table.add_row(
            e["path"],
            str(e["version"]),
            e["content_hash"][:12],
            e["source_file"] or "",
            e["created_at"],
        )
    out.print(table)


class RoleName(StrEnum):
    viewer = "viewer"
    operator = "operator"
    approver = "approver"
    admin = "admin"


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@server_app.command("start")
def server_start(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8082,
    db: DbOption = None,
    home: HomeOption = None,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Accept requests without a token (local use only)."),
    ] = False,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info, debug or trace.")
    ] = "info",
    no_index: Annotated[
        bool,
        typer.Option(
            "--no-index", help="Do not keep the vector index up to date in the background."
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (one process). Steps run in worker processes, not here."""
    from playloop.api.app import create_app
    from playloop.api.server import bind, serve
    from playloop.auth.tokens import active_count

    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise _fail(f"unknown --log-level {log_level!r}", 2)
    engine = _engine(
        home, db, concurrency=0, processes=1, record_resolutions=True, index=not no_index
    )
    try:
        try:
            sock = bind(host, port)
        except OSError as exc:
            raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 2) from None
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        if no_auth and host not in _LOOPBACK:
            err.print(
                f"warning: --no-auth on {host}: anyone who can reach this port may run playbooks",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        elif not no_auth and active_count(engine.store) == 0:
            db_hint = (
                f" --db {_redact(engine.db_url)}" if db or os.environ.get("PLAYLOOP_DB") else ""
            )
            err.print(
                "no API tokens yet: every request except /health gets 401. Create one with\n"
                f"  playloop token create --role admin{db_hint}\n"
                "and send it as 'Authorization: Bearer <token>' (or --token / $PLAYLOOP_TOKEN).",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        # the last line before serving: whoever waits for it has every notice above it
        err.print(
            f"playloop server listening on http://{shown}:{bound} "
            f"(database {_redact(engine.db_url)}, auth {'off' if no_auth else 'on'}); "
            f"API docs at /docs",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        serve(create_app(engine, auth_required=not no_auth), sock, log_level=log_level)
    finally:
        engine.close()


@token_app.command("create")
def token_create(
    role: Annotated[RoleName, typer.Option(help="What the token may do.")],
    name: Annotated[str | None, typer.Option(help="A label (default: role and id).")] = None,
    db: DbOption = None,
    home: HomeOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the token and its details as JSON.")
    ] = False,
) -> None:
    """Create an API token and print it (only this once: only its hash is stored)."""
    from playloop.auth.tokens import create_token

    store = _open_writable_store(home, db)
    try:
        new = create_token(store, role.value, name)
    finally:
        store.close()
    if as_json:
        _print_json({**_token_dict(new.info), "token": new.token})
        return
    err.print(
        f"created token {new.info.token_id} '{new.info.name}' (role {new.info.role}); "
        "it is shown only now:",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    sys.stdout.write(new.token + "\n")


@token_app.command("list")
def token_list(db: DbOption = None, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List API tokens (never their secrets)."""
    from playloop.auth.tokens import list_tokens

    store = _open_store(home, db)
    try:
        tokens = [_token_dict(t) for t in list_tokens(store)]
    finally:
        store.close()
    if as_json:
        _print_json(tokens)
        return
    table = Table("token_id", "name", "role", "created_at", "last_used_at", "revoked_at")
    for t in tokens:
        table.add_row(
            t["token_id"],
            t["name"],
            t["role"],
            t["created_at"],
            t["last_used_at"] or "",
            t["revoked_at"] or "",
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `playloop token list`).")],
    db: DbOption = None,
    home: HomeOption = None,
) -> None:
    """Revoke an API token: requests with it get 401 from now on."""
    from playloop.auth.tokens import get_token, revoke

    store = _open_store(home, db)
    try:
        if not revoke(store, token_id):
            found = get_token(store, token_id)
            if found is None:
                raise _fail(f"no token {token_id}", 2)
            out.print(f"token {token_id} was already revoked at {found.revoked_at}")
            return
    finally:
        store.close()
    out.print(f"token {token_id} revoked")


def _open_writable_store(home: Path | None, db: str | None) -> Any:
    """The store, created (and migrated) if it does not exist yet."""
    from playloop.store.open import database_url, open_store

    url = database_url(db, _home(home))
    try:
        return open_store(url)
    except Exception as exc:
        raise _fail(f"cannot open the database {_redact(url)}: {exc}", 2) from None


def _token_dict(info: Any) -> dict[str, Any]:
    return {
        "token_id": info.token_id,
        "name": info.name,
        "role": info.role,
        "created_at": info.created_at,
        "last_used_at": info.last_used_at,
        "revoked_at": info.revoked_at,
    }


def main() -> None:
    app()


if __name__ == "__main__":
    main()
