#!/usr/bin/env python3
"""Generate docs/cli.md from ``playloop ... --help`` (a test checks it is up to date).

.venv/bin/python scripts/gen_cli_docs.py          # rewrite docs/cli.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    [],
    ["run"],
    ["validate"],
    ["schema"],
    ["executions", "list"],
    ["executions", "show"],
    ["executions", "cancel"],
    ["events", "show"],
    ["events", "tail"],
    ["sql"],
    ["catalog", "register"],
    ["catalog", "list"],
    ["server", "start"],
    ["token", "create"],
    ["token", "list"],
    ["token", "revoke"],
    ["worker", "start"],
    ["workers", "list"],
    ["db", "init"],
    ["db", "migrate"],
    ["db", "status"],
    ["decisions", "list"],
    ["decisions", "stats"],
    ["approve"],
    ["reject"],
    ["override"],
    ["credentials", "set"],
    ["credentials", "list"],
    ["credentials", "delete"],
    ["feedback"],
    ["resolve"],
    ["failures"],
    ["stats"],
    ["suggest"],
    ["similar"],
    ["search"],
    ["learn", "status"],
    ["learn", "update"],
    ["learn", "rebuild"],
    ["generate"],
]


#: run in one child interpreter: every command's ``--help`` as ``python -m playloop.cli`` prints it
RENDER = """
import contextlib, io, json, sys
from playloop.cli import app

texts = []
for args in json.loads(sys.argv[1]):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            app([*args, "--help"], prog_name="python -m playloop.cli")
    except SystemExit as end:
        if end.code not in (0, None):
            raise
    texts.append(out.getvalue())
print(json.dumps(texts))
"""


def help_texts(commands: list[list[str]]) -> list[str]:
    env = {
        **os.environ,
        "COLUMNS": "100",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "_TYPER_FORCE_DISABLE_TERMINAL": "1",
    }
    # one interpreter for all (the test that checks this file waits for it)
    done = subprocess.run(
        [sys.executable, "-c", RENDER, json.dumps(commands)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    texts: list[str] = json.loads(done.stdout)
    return [_clean(text) for text in texts]


def _clean(text: str) -> str:
    lines = [
        line.rstrip() for line in text.replace("python -m playloop.cli", "playloop").splitlines()
    ]
    return "\n".join(lines).strip() + "\n"


def render() -> str:
    parts = [
        "# CLI reference\n\n",
        "Generated from `--help` by `scripts/gen_cli_docs.py`; a test keeps it in step with the code.\n",
    ]
    for args, text in zip(COMMANDS, help_texts(COMMANDS), strict=True):
        title = " ".join(["playloop", *args])
        parts.append(f"\n## `{title}`\n\n```text\n{text}```\n")
    return "".join(parts)


if __name__ == "__main__":
    (ROOT / "docs" / "cli.md").write_text(render())
    print("wrote docs/cli.md")
