"""``playloop decisions list|show|stats`` and ``playloop approve|reject|override``.

They work on the database (another terminal resumes a paused ``playloop run``) or, with
``--server``, through the HTTP API with an approver's token.
"""

from __future__ import annotations

import getpass
import json
import os
import statistics
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

decisions_app = typer.Typer(
    help="Human decisions: the pending inbox, one request, statistics.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (default: $PLAYLOOP_DB).")]
HomeOption = Annotated[
    Path | None, typer.Option("--home", help="State directory (default: $PLAYLOOP_HOME).")
]
ServerOption = Annotated[
    str | None, typer.Option("--server", help="Talk to this playloop server instead.")
]
TokenOption = Annotated[
    str | None, typer.Option("--token", help="API token (default: $PLAYLOOP_TOKEN).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CommentOption = Annotated[
    str | None, typer.Option("--comment", "-m", help="Why: kept with the decision.")
]
AsOption = Annotated[str | None, typer.Option("--as", help="Who decides (default: the OS user).")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _engine(home: Path | None, db: str | None) -> Any:
    from playloop.runtime import Engine, default_home

    return Engine(home if home is not None else default_home(), db=db, concurrency=0)


def _client(server: str, token: str | None) -> httpx.Client:
    token = token or os.environ.get("PLAYLOOP_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=30)


def _remote_error(response: httpx.Response) -> typer.Exit:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    return _fail(f"server answered {response.status_code}: {message}")


@decisions_app.command("list")
def decisions_list(
    status: Annotated[str | None, typer.Option(help="pending, decided or expired.")] = "pending",
    playbook: Annotated[str | None, typer.Option(help="Only this playbook path.")] = None,
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decisions, newest first (the pending ones by default)."""
    if server:
        with _client(server, token) as client:
            params = {k: v for k, v in {"status": status, "playbook": playbook}.items() if v}
            response = client.get("/api/decisions", params=params)
            if response.status_code != 200:
                raise _remote_error(response)
            rows = response.json()["items"]
    else:
        from playloop.runtime import default_home
        from playloop.store.open import database_url, open_store

        store = open_store(database_url(db, home if home is not None else default_home()))
        try:
            rows = store.list_decisions(status=status, playbook=playbook)
        finally:
            store.close()
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table(
        "decision", "playbook", "step", "status", "prompt", "options", "deadline", "decided"
    )
    for r in rows:
        decided = f"{r['action']} by {r['decided_by']}" if r.get("action") else ""
        table.add_row(
            r["decision_id"], r["playbook_path"], r["step"], r["status"], r.get("prompt") or "",
            "/".join(r.get("options") or []), r.get("deadline") or "", decided,
        )  # fmt: skip
    out.print(table)


@decisions_app.command("stats")
def decisions_stats(
    playbook: Annotated[str | None, typer.Option(help="Only this playbook path.")] = None,
    home: HomeOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per decision step: count, approval / rejection / override rates, time to decide."""
    from playloop.runtime import default_home
    from playloop.store.open import database_url, open_store

    store = open_store(database_url(db, home if home is not None else default_home()))
    try:
        rows = store.list_decisions(playbook=playbook, limit=100_000)
    finally:
        store.close()
    stats = decision_stats(rows)
    if as_json:
        out.print_json(json.dumps(stats))
        return
    table = Table("playbook", "step", "count", "approve", "reject", "override", "p50 ms", "p95 ms")
    for s in stats:
        table.add_row(
            s["playbook_path"], s["step"], str(s["count"]), f"{s['approve_rate']:.0%}",
            f"{s['reject_rate']:.0%}", f"{s['override_rate']:.0%}", str(s["time_to_decide_p50_ms"] or ""),
            str(s["time_to_decide_p95_ms"] or ""),
        )  # fmt: skip
    out.print(table)


def decision_stats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group decided requests by (playbook, step): counts, action rates, time-to-decide quantiles."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["playbook_path"], row["step"]), []).append(row)
    result = []
    for (playbook, step), items in sorted(groups.items()):
        decided = [r for r in items if r["status"] == "decided"]
        waits = sorted(
            int(r["time_to_decide_ms"]) for r in decided if r.get("time_to_decide_ms") is not None
        )

        def rate(action: str, decided: list[dict[str, Any]] = decided) -> float:
            return (
                sum(1 for r in decided if r["action"] == action) / len(decided) if decided else 0.0
            )

        result.append(
            {
                "playbook_path": playbook,
                "step": step,
                "count": len(items),
                "decided": len(decided),
                "pending": sum(1 for r in items if r["status"] == "pending"),
                "approve_rate": rate("approve"),
                "reject_rate": rate("reject"),
                "override_rate": rate("override"),
                "time_to_decide_p50_ms": int(statistics.median(waits)) if waits else None,
                "time_to_decide_p95_ms": waits[min(len(waits) - 1, int(0.95 * len(waits)))]
                if waits
                else None,
            }
        )
    return result


def _decide(
    decision_id: str,
    action: str,
    values: dict[str, Any],
    comment: str | None,
    actor: str | None,
    home: Path | None,
    db: str | None,
    server: str | None,
    token: str | None,
) -> None:
    if server:
        with _client(server, token) as client:
            body = {"action": action, "values": values, "comment": comment}
            response = client.post(f"/api/decisions/{decision_id}", json=body)
            if response.status_code != 200:
                raise _remote_error(response)
            out.print(
                f"{decision_id}: {action} by {response.json()['decided_by']}", highlight=False
            )
        return
    from playloop.engine.decisions import DecisionRefused

    who = actor or getpass.getuser()
    engine = _engine(home, db)
    try:
        engine.decide(decision_id, action, actor=who, values=values, comment=comment)
    except DecisionRefused as refused:
        raise _fail(refused.message) from None
    finally:
        engine.close()
    out.print(f"{decision_id}: {action} by {who}", highlight=False)


def approve(
    decision_id: Annotated[str, typer.Argument(help="The decision id (playloop decisions list).")],
    comment: CommentOption = None,
    actor: AsOption = None,
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Approve a pending decision; the paused execution resumes."""
    _decide(decision_id, "approve", {}, comment, actor, home, db, server, token)


def reject(
    decision_id: Annotated[str, typer.Argument(help="The decision id (playloop decisions list).")],
    comment: CommentOption = None,
    actor: AsOption = None,
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Reject a pending decision."""
    _decide(decision_id, "reject", {}, comment, actor, home, db, server, token)


def override(
    decision_id: Annotated[str, typer.Argument(help="The decision id (playloop decisions list).")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="A form value: key=value (YAML scalar).")
    ] = None,
    comment: CommentOption = None,
    actor: AsOption = None,
    home: HomeOption = None,
    db: DbOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Override: decide with values of your own (the request's form fields)."""
    from playloop.workload import BadOverride, build_overrides

    try:
        values = build_overrides(set_ or [], None)
    except BadOverride as exc:
        raise _fail(str(exc)) from None
    _decide(decision_id, "override", values, comment, actor, home, db, server, token)
