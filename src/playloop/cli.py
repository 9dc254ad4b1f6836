"""The ``playloop`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

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
app.add_typer(executions_app, name="executions")
app.add_typer(catalog_app, name="catalog")

err = Console(stderr=True)
out = Console()

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="State directory (default: $PLAYLOOP_HOME or ./.playloop)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


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
) -> None:
    """Run a playbook to the end. Exit 0 on success, 1 on a failed execution, 2 on bad input."""
    from playloop.progress import StepProgress
    from playloop.runtime import Engine, PlaybookNotFound
    from playloop.workload import BadOverride, build_overrides

    if file is None and resume is None:
        raise _fail("give a playbook FILE, or --resume ID", 2)
    try:
        overrides = build_overrides(set_ or [], payload)
    except BadOverride as exc:
        raise _fail(str(exc), 2) from None
    engine = Engine(_home(home), concurrency=concurrency)
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
                summary = engine.run(flow, overrides)
            else:
                summary = engine.resume(execution_id)
        except UnknownExecution as exc:
            raise _fail(str(exc), 2) from None
        finally:
            if progress is not None:
                progress.__exit__(None, None, None)
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


@app.command()
def events(
    execution_id: Annotated[str, typer.Argument(help="Execution id.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print an execution's events in order."""
    store = _open_store(home)
    try:
        found = store.read_events(_execution_id(execution_id))
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


def _open_store(home: Path | None) -> Any:
    from playloop.store.sqlite import SqliteStore

    path = _home(home) / "playloop.db"
    if not path.exists():
        raise _fail(f"no playloop database at {path} (run a playbook first, or pass --home)", 2)
    return SqliteStore(path)


@executions_app.command("list")
def executions_list(
    home: HomeOption = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    playbook: Annotated[str | None, typer.Option(help="Only this playbook path.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List executions, newest first."""
    store = _open_store(home)
    try:
        rows = store.list_executions(status=status, playbook=playbook, limit=limit)
    finally:
        store.close()
    if as_json:
        _print_json(
            [
                {
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
                for r in rows
            ]
        )
        return
    table = Table("execution_id", "playbook", "version", "status", "started_at", "ended_at")
    for r in rows:
        table.add_row(
            str(r.execution_id),
            r.playbook_path,
            r.playbook_version or "",
            r.status,
            r.started_at,
            r.ended_at or "",
        )
    out.print(table)


@executions_app.command("show")
def executions_show(
    execution_id: Annotated[str, typer.Argument(help="Execution id.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an execution's summary: status, steps, result."""
    from playloop.engine.state import fold
    from playloop.runtime import summarize

    store = _open_store(home)
    try:
        found = store.read_events(_execution_id(execution_id))
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
) -> None:
    """Cancel a running execution."""
    from playloop.runtime import Engine

    engine = Engine(_home(home))
    try:
        engine.cancel(_execution_id(execution_id), actor="cli")
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
    as_json: JsonOption = False,
) -> None:
    """Run read-only SQL against the event store (tables: noetl.event, noetl.execution, ...)."""
    from playloop.store.sqlite import readonly_query

    path = _home(home) / "playloop.db"
    try:
        columns, rows = readonly_query(path, query)
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
) -> None:
    """Validate a playbook and store it in the catalog as a new version (if it changed)."""
    from playloop.runtime import Engine, PlaybookNotFound

    engine = Engine(_home(home))
    try:
        flow = engine.load(file)
    except (PlaybookError, PlaybookNotFound) as exc:
        raise _fail(str(exc), 2) from None
    finally:
        engine.close()
    out.print(f"registered {flow.path} version {flow.version}", highlight=False)


@catalog_app.command("list")
def catalog_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List catalog entries: path, version, content hash."""
    store = _open_store(home)
    try:
        entries = store.catalog_list()
    finally:
        store.close()
    if as_json:
        _print_json(
            [
                {
                    "path": e.path,
                    "version": e.version,
                    "content_hash": e.content_hash,
                    "source_file": e.source_file,
                    "created_at": e.created_at,
                }
                for e in entries
            ]
        )
        return
    table = Table("path", "version", "hash", "source_file", "created_at")
    for e in entries:
        table.add_row(
            e.path, str(e.version), e.content_hash[:12], e.source_file or "", e.created_at
        )
    out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
