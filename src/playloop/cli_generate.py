"""``playloop generate``: draft a playbook from a description; a person runs it.

Registered on the main app as ``app.command("generate")(generate)``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from playloop.cli_worker import DbOption, HomeOption

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def _open_store(home: Path, db: str | None) -> Any:
    """The event store if there is one (a missing SQLite file means no catalog yet)."""
    from playloop.store.open import database_url, is_postgres, open_store

    url = database_url(db, home)
    if not is_postgres(url):
        path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite:"))
        if not path.exists():
            return None
    try:
        return open_store(url)
    except Exception as exc:
        raise _fail(f"cannot open the database: {exc}") from None


def generate(
    description: Annotated[
        str, typer.Argument(help="What the playbook should do, in plain words.")
    ],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the draft to this file (not over one).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Let --out replace a file.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the draft and its grounding as JSON.")
    ] = False,
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Use the composer even when $PLAYLOOP_LLM_URL is set.")
    ] = False,
    k: Annotated[int, typer.Option("--k", min=1, max=20, help="Similar playbooks to use.")] = 5,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Draft a playbook from a description, grounded in similar catalog playbooks and the
    steps that worked; with $PLAYLOOP_LLM_URL an LLM writes it. The draft is validated, then
    printed or written: never registered or run. Exit 2 when no valid draft came out."""
    from playloop.dsl.errors import PlaybookError
    from playloop.learn.generate import DraftRejected, LlmConfig, LlmError
    from playloop.learn.generate import generate as draft_playbook
    from playloop.learn.generate.retrieval import open_retriever
    from playloop.runtime import default_home

    if out_file is not None and out_file.exists() and not force:
        raise _fail(f"{out_file} exists (pass --force to replace it)")
    state = home if home is not None else default_home()
    store = _open_store(state, db)
    try:
        with open_retriever(state if store is not None else None, store) as retriever:
            draft = draft_playbook(
                description,
                store=store,
                retriever=retriever,
                llm=LlmConfig.off() if no_llm else None,
                k=k,
            )
    except (DraftRejected, PlaybookError) as exc:
        raise _fail(str(exc)) from None
    except LlmError as exc:
        raise _fail(f"{exc} (--no-llm drafts without it)") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    finally:
        if store is not None:
            store.close()
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(draft.text, encoding="utf-8")
    if as_json:
        value = {**draft.to_dict(), "file": None if out_file is None else str(out_file)}
        option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        sys.stdout.write(orjson.dumps(value, option=option, default=str).decode() + "\n")
        return
    if out_file is None:
        sys.stdout.write(draft.text)
    _summary(draft, str(out_file) if out_file is not None else "FILE")


def _summary(draft: Any, file: str) -> None:
    lines = [
        f"draft {draft.flow.path}: {len(draft.flow.steps)} steps, valid "
        f"({draft.source}, {draft.elapsed_ms:.0f} ms)"
        + (f", written to {file}" if file != "FILE" else ""),
    ]
    playbooks = draft.grounding.get("playbooks") or []
    if playbooks:
        shown = ", ".join(f"{p['path']} ({p['score']:.2f})" for p in playbooks[:3])
        lines.append(f"  similar playbooks ({draft.grounding['retrieval']}): {shown}")
    lines += [f"  from the catalog: {b}" for b in draft.borrowed]
    lines += [f"  repaired: {r}" for r in draft.repairs]
    if draft.needs:
        lines.append(f"  needs: {', '.join(draft.needs)}")
    lines += [f"  note: {n}" for n in draft.notes]
    lines.append(f"Review it, then run it yourself: {draft.how_to_run(file)}")
    err.print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)
