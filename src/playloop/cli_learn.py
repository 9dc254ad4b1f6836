"""``playloop similar``, ``playloop search`` and ``playloop learn status|update|rebuild``.

``similar`` and ``search`` read the vector index only (the payloads carry resolutions), so
they open no database unless ``--event`` names a failure; their imports stay light (no
FastAPI, no pydantic models) so that they answer fast from a cold start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from playloop.cli_worker import DbOption, HomeOption

if TYPE_CHECKING:
    from playloop.learn.indexer import Indexer
    from playloop.learn.vectors import VectorIndex

out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
KOption = Annotated[int, typer.Option("--k", min=1, max=100, help="At most this many results.")]
MinScoreOption = Annotated[
    float,
    typer.Option(
        "--min-score", min=0.0, max=1.0, help="Only results scoring at least this (0..1)."
    ),
]

learn_app = typer.Typer(
    help="The vector index of failures, playbooks and decisions: status, update, rebuild.",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def _print_json(value: Any) -> None:
    import orjson

    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    sys.stdout.write(orjson.dumps(value, option=option, default=str).decode() + "\n")


def _home(home: Path | None) -> Path:
    return home if home is not None else Path(os.environ.get("PLAYLOOP_HOME") or ".playloop")


def _index(home: Path | None) -> VectorIndex:
    from playloop.learn.vectors import EmbedderMismatch, IndexBusy, VectorIndex

    try:
        return VectorIndex.open(_home(home))
    except (EmbedderMismatch, IndexBusy) as exc:
        raise _fail(str(exc)) from None


def _store(home: Path | None, db: str | None) -> Any:
    from playloop.store.open import database_url, is_postgres, open_store

    url = database_url(db, _home(home))
    if not is_postgres(url):
        path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite:"))
        if not path.exists():
            hint = "pass --db" if db or os.environ.get("PLAYLOOP_DB") else "pass --home or --db"
            raise _fail(f"no playloop database at {path} ({hint})")
    try:
        return open_store(url)
    except Exception as exc:
        raise _fail(f"cannot open the database: {exc}") from None


def similar(
    text: Annotated[
        str | None, typer.Argument(help="An error message (or give --event).", show_default=False)
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="A failure event's id: failures like it.")
    ] = None,
    k: KOption = 5,
    min_score: MinScoreOption = 0.0,
    playbook: Annotated[
        str | None, typer.Option("--playbook", help="Only failures of this playbook path.")
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Past failures like an error message or a failure event, best first, with what
    resolved them (a retry, a decision, a later run, a note). Exit 2 on bad input."""
    from playloop.learn.similar import similar_failures

    if (text is None) == (event is None):
        raise _fail("give an error TEXT or --event ID (one of them)")
    exclude = None
    if event is not None:
        if not event.strip().isdigit():
            raise _fail(f"event id must be a number, got {event!r}")
        exclude = int(event)
        text = _failure_text(home, db, exclude)
    assert text is not None
    if not text.strip():
        raise _fail("the error text is empty")
    index = _index(home)
    try:
        found = similar_failures(
            index, text, k=k, min_score=min_score, playbook=playbook, exclude_event=exclude
        )
    finally:
        index.close()
    if as_json:
        _print_json([m.to_dict() for m in found])
        return
    if not found:
        out.print("no similar failures indexed", highlight=False)
        return
    from rich.table import Table

    table = Table("score", "playbook", "step", "error", "resolution", "event_id")
    for m in found:
        table.add_row(
            f"{m.score:.2f}",
            m.playbook,
            m.step or "",
            m.error[:70],
            (m.resolution or "-")[:70],
            m.event_id,
        )
    out.print(table)


def _failure_text(home: Path | None, db: str | None, event_id: int) -> str:
    """The indexed text of a failure event (as the indexer would build it)."""
    from playloop.learn.documents import indexed_failure
    from playloop.learn.indexer import failure_document
    from playloop.learn.linking import is_failure
    from playloop.learn.queries import event_by_id

    store = _store(home, db)
    try:
        found = event_by_id(store, event_id)
        if found is None:
            raise _fail(f"no event {event_id}")
        if not (is_failure(found) or indexed_failure(found)):
            raise _fail(f"event {event_id} is a {found.event_type} event, not a failure")
        return failure_document(store, found).text
    finally:
        store.close()


def search(
    text: Annotated[str, typer.Argument(help="What the playbook does, in plain language.")],
    k: KOption = 5,
    min_score: MinScoreOption = 0.0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Catalog playbooks by meaning: description, step names and tools, best first."""
    from playloop.learn.similar import search_playbooks

    if not text.strip():
        raise _fail("the search text is empty")
    index = _index(home)
    try:
        found = search_playbooks(index, text, k=k, min_score=min_score)
    finally:
        index.close()
    if as_json:
        _print_json([p.to_dict() for p in found])
        return
    if not found:
        out.print("no playbooks indexed", highlight=False)
        return
    from rich.table import Table

    table = Table("score", "path", "version", "description", "steps")
    for p in found:
        table.add_row(
            f"{p.score:.2f}",
            p.path,
            "" if p.version is None else str(p.version),
            p.description[:60],
            ", ".join(p.steps)[:50],
        )
    out.print(table)


def _indexer(home: Path | None, db: str | None) -> Indexer:
    from playloop.learn.indexer import Indexer

    return Indexer(_store(home, db), _home(home), index=_index(home))


def _claim(indexer: Indexer) -> None:
    if not indexer.claim():
        indexer.close()
        raise _fail(
            "another process is indexing this index (a server or a run): it keeps it up "
            "to date; try again when it has stopped",
            1,
        )


def _run_with_progress(indexer: Indexer, rebuild: bool, quiet: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    pending = indexer.pending() if not rebuild else None
    if rebuild:
        from playloop.store.generic import fetch

        total = int(fetch(indexer.store, "index_events_count", {"after": 0})[0][0]) + int(
            fetch(indexer.store, "index_catalog_count", {"after": 0})[0][0]
        )
    else:
        assert pending is not None
        total = pending["events"] + pending["catalog"]
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    ) as progress:
        task = progress.add_task("indexing", total=total or None)

        def advance(one: Any) -> None:
            progress.advance(task, one.events + one.playbooks)

        if rebuild:
            return indexer.rebuild(on_pass=advance)
        return indexer.catch_up(on_pass=advance)


@learn_app.command("status")
def learn_status(home: HomeOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """The index's checkpoints, what is left to index, the counts and the model."""
    indexer = _indexer(home, db)
    try:
        status: dict[str, Any] = {
            "index": indexer.identity,
            "model": indexer.index.embedder.name,
            "dim": indexer.index.embedder.dim,
            "checkpoints": indexer.checkpoints(),
            "pending": indexer.pending(),
            "counts": indexer.counts(),
            "indexing_elsewhere": not indexer.claim(),
        }
    finally:
        indexer.close()
    if as_json:
        _print_json(status)
        return
    out.print(f"index {status['index']} ({status['model']}, {status['dim']} dims)", highlight=False)
    for name, cp in status["checkpoints"].items():
        out.print(f"  {name}: position {cp['position']} at {cp['updated_at']}", highlight=False)
    counts = ", ".join(f"{k} {v}" for k, v in status["counts"].items())
    out.print(f"  points: {counts}", highlight=False)
    pending = status["pending"]
    out.print(
        f"  pending: {pending['events']} events, {pending['catalog']} catalog entries"
        + (" (another process is indexing)" if status["indexing_elsewhere"] else ""),
        highlight=False,
    )


@learn_app.command("update")
def learn_update(
    home: HomeOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Index what was appended since the checkpoint. Exit 1 if another process indexes."""
    _index_now(home, db, as_json, rebuild=False)


@learn_app.command("rebuild")
def learn_rebuild(
    home: HomeOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Drop the index and build it again from the whole event log and catalog."""
    _index_now(home, db, as_json, rebuild=True)


def _index_now(home: Path | None, db: str | None, as_json: bool, *, rebuild: bool) -> None:
    indexer = _indexer(home, db)
    _claim(indexer)
    try:
        done = _run_with_progress(indexer, rebuild=rebuild, quiet=as_json)
        counts = indexer.counts()
    finally:
        indexer.close()
    _report(done, counts, as_json)


def _report(done: Any, counts: dict[str, int], as_json: bool) -> None:
    if as_json:
        _print_json({**done.to_dict(), "counts": counts})
        return
    out.print(
        f"indexed {done.events} events ({done.failures} failures, {done.resolutions} "
        f"resolutions, {done.decisions} decisions) and {done.playbooks} playbooks in "
        f"{done.seconds:.1f}s; points: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
        highlight=False,
    )


#: ``similar`` and ``search`` alone, for the light entry point (``playloop.cli_entry``)
light_app = typer.Typer(
    name="playloop", pretty_exceptions_enable=False, add_completion=False, no_args_is_help=True
)
light_app.command("similar")(similar)
light_app.command("search")(search)
