"""``playloop feedback``, ``playloop resolve`` and ``playloop failures``.

Register them on the main app as top-level commands::

    app.command("feedback")(feedback)
    app.command("resolve")(resolve)
    app.command("failures")(failures)

``python -m playloop.cli_feedback`` runs the three on their own.
"""

from __future__ import annotations

import getpass
import math
import os
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from playloop.cli_worker import DbOption, HomeOption

if TYPE_CHECKING:
    from playloop.engine.events import Event
    from playloop.runtime import Engine

out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_METRIC = re.compile(r"^([^=\s][^=]*)=(.*)$", re.DOTALL)


class Label(StrEnum):
    good = "good"
    bad = "bad"


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def _print_json(value: Any) -> None:
    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    sys.stdout.write(orjson.dumps(value, option=option, default=str).decode() + "\n")


def _number(text: str, what: str) -> int:
    if not text.strip().isdigit():
        raise _fail(f"{what} must be a number, got {text!r}")
    return int(text)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def metric_value(text: str) -> int | float | str:
    """``k=v`` values: an integer or a finite decimal number when they read as one, else text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def parse_metrics(items: list[str]) -> dict[str, int | float | str]:
    metrics: dict[str, int | float | str] = {}
    for item in items:
        match = _METRIC.match(item)
        if match is None:
            raise _fail(f"--metric takes NAME=VALUE, got {item!r}")
        metrics[match.group(1).strip()] = metric_value(match.group(2).strip())
    return metrics


def _engine(home: Path | None, db: str | None) -> Engine:
    """An engine that runs no steps, for appending events to an existing database."""
    from playloop.runtime import Engine, default_home
    from playloop.store.open import database_url, is_postgres

    where = home if home is not None else default_home()
    url = database_url(db, where)
    if not is_postgres(url):
        path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite:"))
        if not path.exists():
            hint = "pass --db" if db or os.environ.get("PLAYLOOP_DB") else "pass --home or --db"
            raise _fail(f"no playloop database at {path} ({hint})")
    try:
        return Engine(where, db=db, concurrency=0, processes=1)
    except Exception as exc:
        raise _fail(f"cannot open the database: {exc}") from None


def _event_line(what: str, event: Event) -> str:
    return (
        f"{what} recorded on execution {event.execution_id} "
        f"(event {event.event_id}, seq {event.seq})"
    )


def feedback(
    execution_id: Annotated[str, typer.Argument(help="The execution the feedback is about.")],
    label: Annotated[Label, typer.Option("--label", help="The outcome: good or bad.")],
    score: Annotated[float | None, typer.Option("--score", help="A number.")] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="NAME=VALUE (repeatable); numbers stay numbers."),
    ] = None,
    step: Annotated[str | None, typer.Option("--step", help="The step it is about.")] = None,
    comment: Annotated[str | None, typer.Option("--comment", help="Free text.")] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who gives it (default: the OS user).")
    ] = None,
    db: DbOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a downstream outcome on an execution, at any time after it ran."""
    from pydantic import ValidationError

    from playloop.engine.orchestrator import UnknownExecution
    from playloop.learn.feedback import Feedback, UnknownStep, record_feedback

    number = _number(execution_id, "execution id")
    if score is not None and not math.isfinite(score):
        raise _fail(f"--score must be a finite number, got {score}")
    try:
        body = Feedback(
            label=label.value, score=score, metrics=parse_metrics(metric or []), comment=comment
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid feedback: {problems}") from None
    engine = _engine(home, db)
    try:
        event = record_feedback(engine, number, body, step=step, actor=_actor(actor))
    except (UnknownExecution, UnknownStep) as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.close()
    if as_json:
        _print_json(event.to_dict())
        return
    out.print(_event_line(f"feedback '{label.value}'", event), highlight=False)


def resolve(
    event_id: Annotated[str, typer.Argument(help="The failure event's id (see `failures`).")],
    note: Annotated[str, typer.Option("--note", help="What resolved the failure.")],
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who resolved it (default: the OS user).")
    ] = None,
    db: DbOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record by hand what resolved a failure. Exit 2 when the event is not a failure."""
    from playloop.learn.resolutions import NotAFailure, UnknownEvent
    from playloop.learn.resolutions import resolve as record_manual

    number = _number(event_id, "event id")
    engine = _engine(home, db)
    try:
        event = record_manual(engine, number, note, actor=_actor(actor))
    except (UnknownEvent, NotAFailure, ValueError) as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.close()
    if as_json:
        _print_json(event.to_dict())
        return
    out.print(_event_line(f"resolution of event {event_id}", event), highlight=False)


def failures(
    playbook: Annotated[
        str | None, typer.Option("--playbook", help="Only this playbook path.")
    ] = None,
    unresolved: Annotated[
        bool, typer.Option("--unresolved", help="Only failures nothing resolved yet.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")
    ] = 50,
    db: DbOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Failures, newest first, with what resolved them (retry, decision, later run, manual)."""
    from playloop.learn.resolutions import list_failures

    engine = _engine(home, db)
    try:
        found = [
            f.to_dict()
            for f in list_failures(engine, playbook=playbook, unresolved=unresolved, limit=limit)
        ]
    finally:
        engine.close()
    if as_json:
        _print_json(found)
        return
    table = Table("event_id", "created_at", "execution", "step", "failure", "resolution")
    for f in found:
        step = f["step_name"] or ""
        if f["iteration"] is not None:
            step += f"[{f['iteration']}]"
        error = f"{f['error_type'] or f['event_type']}: {f['error_message'] or ''}"
        fixes = "; ".join(f"{r['kind']}: {r['note']}" for r in f["resolutions"])
        table.add_row(
            f["event_id"], f["created_at"], f["execution_id"], step, error[:80], fixes or "-"
        )
    out.print(table)
    if not found:
        out.print("no failures" + (" left unresolved" if unresolved else ""), highlight=False)


app = typer.Typer(
    name="playloop",
    help="Feedback on executions and resolutions of failures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("feedback")(feedback)
app.command("resolve")(resolve)
app.command("failures")(failures)


if __name__ == "__main__":
    app()
