"""``playloop stats`` and ``playloop suggest``: what the event log says about playbooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from playloop.cli_feedback import JsonOption, _fail, _print_json
from playloop.cli_worker import DbOption, HomeOption

out = Console()


def _store(home: Path | None, db: str | None) -> Any:
    from playloop.cli import _open_store

    return _open_store(home, db)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def stats(
    playbook: Annotated[
        str | None, typer.Option("--playbook", help="Only this playbook path.")
    ] = None,
    db: DbOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Statistics from the event log: per playbook, step, tool and error class."""
    from playloop.learn.stats import build_snapshot

    store = _store(home, db)
    try:
        data = build_snapshot(store).to_dict(playbook)
    finally:
        store.close()
    if as_json:
        _print_json(data)
        return
    runs = Table("playbook", "runs", "completed", "failed", "p50 ms", "p95 ms", "feedback")
    for p in data["playbooks"]:
        d = p["duration_ms"] or {}
        fb = ", ".join(f"{k} {v}" for k, v in p["feedback"].items()) or "-"
        runs.add_row(
            p["name"], str(p["total"]), str(p["completed"]), str(p["failed"]),
            _ms(d.get("p50")), _ms(d.get("p95")), fb,
        )  # fmt: skip
    out.print(runs)
    steps = Table(
        "playbook", "step", "tool", "runs", "fail rate", "attempt fail", "p50 ms", "p90 ms",
        "p99 ms", "error classes", "approve", "override",
    )  # fmt: skip
    for s in data["steps"]:
        d = s["duration_ms"] or {}
        classes = ", ".join(
            f"{name} {c['failures']} (retry ok {_pct(c['success_probability'])})"
            for name, c in s["error_classes"].items()
        )
        steps.add_row(
            s["playbook"], s["step"], s["tool"] or "-", str(s["runs"]), _pct(s["failure_rate"]),
            _pct(s["attempt_failure_rate"]), _ms(d.get("p50")), _ms(d.get("p90")),
            _ms(d.get("p99")), classes or "-", _pct(s["approval_rate"]), _pct(s["override_rate"]),
        )  # fmt: skip
    out.print(steps)
    if not data["steps"]:
        out.print("no step has run yet" + (f" in {playbook}" if playbook else ""))


def suggest(
    playbook: Annotated[str, typer.Argument(help="A playbook path in the catalog, or a file.")],
    db: DbOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Suggestions for a playbook: retries, timeouts, flaky and slow steps, steps that could
    run in parallel, approvals always granted or always overridden."""
    from playloop.dsl.errors import PlaybookError
    from playloop.learn.stats import build_snapshot
    from playloop.learn.suggest import suggest as make

    store = _store(home, db)
    try:
        try:
            flow = flow_of(store, playbook)
        except (LookupError, PlaybookError) as exc:
            raise _fail(str(exc)) from None
        found = [s.to_dict() for s in make(store, flow, build_snapshot(store))]
    finally:
        store.close()
    if as_json:
        _print_json({"playbook": flow.path, "suggestions": found})
        return
    table = Table("confidence", "kind", "step", "suggestion", "change")
    for s in found:
        table.add_row(
            f"{s['confidence']:.2f}", s["kind"], s["step"] or "-", s["message"], s["change"] or "-"
        )
    out.print(table)
    if not found:
        out.print(f"no suggestions for {flow.path} yet", highlight=False)


def flow_of(store: Any, playbook: str) -> Any:
    """The playbook's latest catalog version, or the file at that path."""
    from playloop.dsl.load import load_text

    entry = store.catalog_get(playbook)
    if entry is not None and entry.content:
        return load_text(entry.content, playbook)
    file = Path(playbook)
    if file.is_file():
        return load_text(file.read_text(encoding="utf-8"), str(file))
    raise LookupError(f"no playbook '{playbook}' in the catalog and no such file")
