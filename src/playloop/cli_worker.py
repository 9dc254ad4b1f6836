"""``playloop worker start``, ``playloop workers list`` and ``playloop db init|migrate|status``."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

worker_app = typer.Typer(help="Run a worker that executes queued steps.", no_args_is_help=True)
workers_app = typer.Typer(help="List the workers registered in a database.", no_args_is_help=True)
db_app = typer.Typer(help="Create and migrate the database schema.", no_args_is_help=True)

out = Console()
err = Console(stderr=True)


@worker_app.callback()
def _worker_group() -> None:
    """Keep `start` a subcommand even while it is the only one."""


@workers_app.callback()
def _workers_group() -> None:
    """Keep `list` a subcommand even while it is the only one."""


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL: postgresql://... or sqlite:///path (default: $PLAYLOOP_DB)."
    ),
]
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="State directory (default: $PLAYLOOP_HOME or ./.playloop)."),
]


def _home(home: Path | None) -> Path:
    from playloop.runtime import default_home

    return home if home is not None else default_home()


@worker_app.command("start")
def worker_start(
    db: DbOption = None,
    home: HomeOption = None,
    pool: Annotated[
        str, typer.Option(help="Run only steps of this pool (step `pool:` or tool.spec.pool).")
    ] = "default",
    concurrency: Annotated[int, typer.Option(help="Steps run at once.")] = 8,
    processes: Annotated[
        int | None, typer.Option(help="Python child processes (default: CPU count).")
    ] = None,
    grace: Annotated[
        float, typer.Option(help="Seconds to let running steps finish on SIGTERM.")
    ] = 30.0,
    lease_seconds: Annotated[
        float, typer.Option(help="Lease on a running step; others take it over when it lapses.")
    ] = 30.0,
    no_similar: Annotated[
        bool,
        typer.Option(
            "--no-similar",
            help="Do not attach similar past failures to the failures of steps run here.",
        ),
    ] = False,
) -> None:
    """Claim and run queued steps of any execution until SIGTERM or Ctrl-C.

    On SIGTERM the worker stops taking work, lets running steps finish (up to --grace
    seconds) and hands back what it still holds, so another worker takes it at once.

    A failed step's event gets similar past failures (meta.similar) from the vector index
    another process keeps: the Qdrant server at $PLAYLOOP_QDRANT_URL, or the embedded index
    of --home when a server on this machine shares it. The worker never writes the index.
    """
    from playloop.runtime import Engine

    engine = Engine(
        _home(home),
        db=db,
        concurrency=concurrency,
        processes=processes,
        claim_any=True,
        pool=pool,
        lease_seconds=lease_seconds,
        record_resolutions=True,
        similar=not no_similar,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    engine.serve()
    err.print(
        f"worker {engine.worker_id} ready: pool {pool}, concurrency {concurrency}", highlight=False
    )
    try:
        while not stop.wait(0.5):
            pass
        err.print("worker draining: finishing running steps", highlight=False)
        left = engine.drain(grace)
        if left:
            err.print(f"worker handed back {left} unfinished step(s)", highlight=False)
    finally:
        engine.close()


@workers_app.command("list")
def workers_list(db: DbOption = None, home: HomeOption = None) -> None:
    """Workers with their pool, concurrency and last heartbeat."""
    from playloop.store.open import database_url, open_store

    store = open_store(database_url(db, _home(home)))
    try:
        rows = store.list_workers()
    finally:
        store.close()
    table = Table("worker", "pool", "host", "pid", "concurrency", "status", "heartbeat")
    now = time.time()
    for w in rows:
        age = f"{now - w.heartbeat_at:.0f}s ago"
        table.add_row(
            w.worker_id, w.pool or "", w.hostname, str(w.pid), str(w.concurrency), w.status, age
        )
    out.print(table)


@db_app.command("init")
def db_init(db: DbOption = None, home: HomeOption = None) -> None:
    """Create the schema (or bring it up to date)."""
    db_migrate(db, home)


@db_app.command("migrate")
def db_migrate(db: DbOption = None, home: HomeOption = None) -> None:
    """Apply every migration not yet applied."""
    from playloop.store.open import database_url, open_store

    url = database_url(db, _home(home))
    store = open_store(url)  # opening a store migrates it, under a lock
    try:
        versions = store.schema_versions()
    finally:
        store.close()
    out.print(
        f"schema at version {max(versions)} ({', '.join(map(str, versions))} applied)",
        highlight=False,
    )


@db_app.command("status")
def db_status(db: DbOption = None, home: HomeOption = None) -> None:
    """Show applied and available migrations."""
    from playloop.store.open import database_url, is_postgres, open_store
    from playloop.store.queries import migrations

    url = database_url(db, _home(home))
    store = open_store(url)
    try:
        applied = set(store.schema_versions())
    finally:
        store.close()
    dialect = "postgres" if is_postgres(url) else "sqlite"
    table = Table("version", "migration", "applied")
    for version, name, _ in migrations(dialect):
        table.add_row(str(version), name, "yes" if version in applied else "no")
    out.print(table)
    out.print(f"checked {datetime.now(UTC).isoformat(timespec='seconds')}", highlight=False)
