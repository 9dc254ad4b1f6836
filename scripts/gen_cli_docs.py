#!/usr/bin/env python3
"""Generate docs/cli.md from ``playloop ... --help`` (a test checks it is up to date).

.venv/bin/python scripts/gen_cli_docs.py          # rewrite docs/cli.md
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


def help_text(args: list[str]) -> str:
    env = {
        **os.environ,
        "COLUMNS": "100",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "_TYPER_FORCE_DISABLE_TERMINAL": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args, "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    lines = [
        line.rstrip()
        for line in done.stdout.replace("python -m playloop.cli", "playloop").splitlines()
    ]
    return "\n".join(lines).strip() + "\n"


def render() -> str:
    parts = [
        "# CLI reference\n\n",
        "Generated from `--help` by `scripts/gen_cli_docs.py`; a test keeps it in step with the code.\n",
    ]
    # one interpreter per command: run a few at once (the test that checks this file waits)
    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(help_text, COMMANDS))
    for args, text in zip(COMMANDS, texts, strict=True):
        title = " ".join(["playloop", *args])
        parts.append(f"\n## `{title}`\n\n```text\n{text}```\n")
    return "".join(parts)


if __name__ == "__main__":
    (ROOT / "docs" / "cli.md").write_text(render())
    print("wrote docs/cli.md")
