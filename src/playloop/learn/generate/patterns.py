"""The library of step patterns: the composer's second choice, after the catalog's steps.

Each pattern returns one step (a plain dict in the DSL's surface form) for an intent,
reading its input from ``ctx.data`` (a template of the previous step's useful result) and
declaring what it needs from the world (``http``, ``postgres``, ``a person``). Every
pattern is runnable as written where it needs no outside service: SQL patterns create
their table if it is missing, python patterns accept a list or a single value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from playloop.learn.generate.intents import Intent

__all__ = ["PATTERNS", "Built", "PatternContext", "ref", "sample_items", "singular"]

RETRY_HTTP: dict[str, Any] = {
    "attempts": 3,
    "delay": "1s",
    "backoff": "exponential",
    "max_delay": "30s",
    "jitter": 0.1,
    "on": ["ConnectionError", "TimeoutError", "HTTPError.429", "HTTPError.503"],
}


def ref(expression: str) -> str:
    """``{{ expression }}``: a template that keeps the expression's type."""
    return "{{ " + expression + " }}"


@dataclass
class PatternContext:
    """What a pattern may read and add to: the draft under construction."""

    name: str
    intent: Intent
    data: str | None  # a '{{ ... }}' template of the previous step's data, or None
    workload: dict[str, Any]
    approvers: str = "reviewers"
    gate_key: str | None = None  # the result key a later gate reads (quality_score)

    def param(self, key: str, default: Any) -> str:
        """A workload parameter (added with ``default`` when new), as a template."""
        self.workload.setdefault(key, default)
        return ref(f"workload.{key}")

    @property
    def obj(self) -> str:
        return self.intent.obj or "items"


@dataclass
class Built:
    """A pattern's step, what it needs, and the template of its result's data."""

    step: dict[str, Any]
    output: str | None
    needs: set[str] = field(default_factory=set)


def _input(ctx: PatternContext) -> dict[str, Any]:
    return {"data": ctx.data} if ctx.data else {"data": "{{ workload | tojson }}"}


def fetch(ctx: PatternContext) -> Built:
    url = ctx.param("api_url", "https://api.example.com/" + ctx.obj)
    if ctx.intent.loop_over:
        url = url + "/" + ref(singular(ctx.intent.loop_over))
    tool: dict[str, Any] = {
        "kind": "http",
        "method": "GET",
        "url": url,
        "headers": {"Accept": "application/json"},
        "timeout": 30,
    }
    step = {
        "step": ctx.name,
        "desc": f"GET the {ctx.obj} from the API (workload.api_url); retried on transient errors.",
        "tool": tool,
        "retry": dict(RETRY_HTTP),
    }
    return Built(step, ref(f"{ctx.name}.data") if not ctx.intent.loop_over else None, {"http"})


def _table(ctx: PatternContext) -> str:
    return re.sub(r"[^a-z0-9_]", "_", ctx.obj)[:40] or "items"


def query(ctx: PatternContext) -> Built:
    dialect = ctx.intent.dialect or "sqlite"
    table = _table(ctx)
    desc = f"Read the {ctx.obj} from {dialect} (creates the table when it is missing)."
    if dialect == "postgres":
        tool: dict[str, Any] = {
            "kind": "postgres",
            "auth": ctx.param("pg_credential", "warehouse"),
            "query": f"SELECT * FROM {table} LIMIT 1000",
        }
        return Built(
            {"step": ctx.name, "desc": desc, "tool": tool}, ref(f"{ctx.name}.rows"), {"postgres"}
        )
    tool = {
        "kind": dialect,
        "database": _database(ctx, dialect),
        "command": _create(table, dialect),
        "query": f"SELECT id, payload, created_at FROM {table} ORDER BY id LIMIT 1000",
    }
    return Built({"step": ctx.name, "desc": desc, "tool": tool}, ref(f"{ctx.name}.rows"))


def load(ctx: PatternContext) -> Built:
    dialect = ctx.intent.dialect or "sqlite"
    table = _table(ctx)
    value = ctx.data or "{{ workload }}"
    payload = value.replace("}}", "| tojson }}", 1) if value.endswith("}}") else value
    desc = f"Store the previous step's data in {dialect} table {table} as one JSON document."
    if dialect == "postgres":
        tool: dict[str, Any] = {
            "kind": "postgres",
            "auth": ctx.param("pg_credential", "warehouse"),
            "command": f"CREATE TABLE IF NOT EXISTS {table} (id BIGSERIAL PRIMARY KEY, "
            "payload JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            "query": f"INSERT INTO {table} (payload) VALUES (%s::jsonb)",
            "params": [payload],
        }
        return Built({"step": ctx.name, "desc": desc, "tool": tool}, ctx.data, {"postgres"})
    tool = {
        "kind": dialect,
        "database": _database(ctx, dialect),
        "command": _create(table, dialect),
        "query": f"INSERT INTO {table} (payload) VALUES (?)",
        "params": [payload],
    }
    return Built({"step": ctx.name, "desc": desc, "tool": tool}, ctx.data)


def _database(ctx: PatternContext, dialect: str) -> str:
    if dialect == "duckdb":
        return ctx.param("duckdb_path", "analytics.duckdb")
    return ctx.param("database", "playloop-data.db")


def _create(table: str, dialect: str) -> str:
    if dialect == "duckdb":
        return (
            f"CREATE SEQUENCE IF NOT EXISTS {table}_id;\n"
            f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT DEFAULT nextval('{table}_id'), "
            "payload VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp)"
        )
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, payload TEXT, "
        "created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
    )


_CODE = {
    "clean": """\
def main(data):
    rows = data if isinstance(data, list) else [data]
    # TODO: clean on the real fields; here: drop empty rows and exact duplicates
    seen, kept = set(), []
    for row in rows:
        key = repr(row)
        if row in (None, "", {}, []) or key in seen:
            continue
        seen.add(key)
        kept.append(row)
    return {"rows": kept, "count": len(kept), "dropped": len(rows) - len(kept)}
""",
    "hash": """\
import hashlib
import json


def main(data):
    text = json.dumps(data, sort_keys=True, default=str)
    return {"rows": [data], "count": 1, "sha256": hashlib.sha256(text.encode()).hexdigest()}
""",
    "count": """\
def main(data):
    rows = data if isinstance(data, list) else [data]
    # TODO: count what matters; here: items and their text length
    return {"rows": rows, "count": len(rows), "size": sum(len(str(r)) for r in rows)}
""",
    "aggregate": """\
def main(data):
    rows = data if isinstance(data, list) else [data]
    # TODO: group on the real key; here: one total over every numeric value
    numbers = [v for r in rows for v in (r.values() if isinstance(r, dict) else [r])
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {"rows": rows, "count": len(rows), "total": sum(numbers)}
""",
    "transform": """\
def main(data):
    rows = data if isinstance(data, list) else [data]
    # TODO: {what}
    out = [row for row in rows]
    return {"rows": out, "count": len(out)}
""",
    "validate": """\
def main(data):
    rows = data if isinstance(data, list) else [data]
    # TODO: real checks; here: the share of rows that are not empty
    good = sum(1 for r in rows if r not in (None, "", {}, []))
    score = good / len(rows) if rows else 1.0
    return {"quality_score": round(score, 4), "checked": len(rows), "rows": rows}
""",
    "train": """\
def main(data):
    rows = data if isinstance(data, list) else [data]
    # TODO: train the real model; here: a stand-in that records what it saw
    return {"rows": rows, "model_uri": "models/{obj}/candidate", "trained_on": len(rows)}
""",
    "evaluate": """\
def main(data):
    # TODO: evaluate on held-out data; here: a fixed stand-in score
    return {"rows": data, "score": 0.87, "metrics": {"accuracy": 0.87}}
""",
    "report": """\
def main(data):
    rows = data if isinstance(data, list) else [data]
    return {"count": len(rows), "rows": rows}
""",
}
_FLAVOUR = {
    "clean": "clean",
    "cleanse": "clean",
    "dedupe": "clean",
    "deduplicate": "clean",
    "normalize": "clean",
    "normalise": "clean",
    "filter": "clean",
    "hash": "hash",
    "count": "count",
    "parse": "count",
    "tokenize": "count",
    "tokenise": "count",
    "aggregate": "aggregate",
    "summarize": "aggregate",
    "summarise": "aggregate",
    "compute": "aggregate",
    "calculate": "aggregate",
    "merge": "aggregate",
}


def python(ctx: PatternContext, flavour: str | None = None) -> Built:
    flavour = flavour or _FLAVOUR.get(ctx.intent.verb, "transform")
    what = f"{ctx.intent.verb} the {ctx.obj}"
    code = _CODE[flavour].replace("{what}", what).replace("{obj}", ctx.obj)
    step = {
        "step": ctx.name,
        "desc": f"{what[0].upper()}{what[1:]} (python; edit the TODO).",
        "tool": {"kind": "python", "input": _input(ctx), "code": code},
    }
    return Built(step, ref(f"{ctx.name}.rows") if not ctx.intent.loop_over else None)


def transform(ctx: PatternContext) -> Built:
    return python(ctx)


def validate(ctx: PatternContext) -> Built:
    return python(ctx, "validate")


def train(ctx: PatternContext) -> Built:
    return python(ctx, "train")


def evaluate(ctx: PatternContext) -> Built:
    return python(ctx, "evaluate")


def report(ctx: PatternContext) -> Built:
    return python(ctx, "report")


def approve(ctx: PatternContext) -> Built:
    prompt = f"Approve: {ctx.intent.obj or 'the result'}?"
    if ctx.gate_key:
        prompt = "{{ args.issue | default('Please review') }}"
    step = {
        "step": ctx.name,
        "desc": "A person decides before the playbook goes on (playloop approve / reject).",
        "tool": {
            "kind": "approval",
            "prompt": prompt,
            "options": ["approve", "reject"],
            "approvers": [ctx.approvers],
            "timeout": "24h",
            "on_timeout": "reject",
            "remind_every": "4h",
        },
    }
    return Built(step, ctx.data, {"a person (approval)"})


def notify(ctx: PatternContext) -> Built:
    body: dict[str, Any] = {"text": f"{ctx.name}: " + "{{ playbook.name }} {{ execution_id }}"}
    if ctx.data:
        body["data"] = ctx.data
    tool: dict[str, Any] = {
        "kind": "http",
        "method": "POST",
        "url": ctx.param("notify_url", "https://hooks.example.com/notify"),
        "json": body,
        "timeout": 10,
    }
    needs = {"http"}
    desc = "POST a notification to workload.notify_url."
    if ctx.intent.callback:
        body["callback_url"] = "{{ callback_url }}"
        tool["wait"] = "callback"
        tool["wait_timeout"] = "24h"
        needs.add("a callback")
        desc += " Waits until the service calls callback_url; its body is this step's result."
    step = {"step": ctx.name, "desc": desc, "tool": tool, "retry": dict(RETRY_HTTP)}
    return Built(step, ref(f"{ctx.name}.data") if ctx.intent.callback else ctx.data, needs)


def deploy(ctx: PatternContext) -> Built:
    tool = {
        "kind": "http",
        "method": "POST",
        "url": ctx.param("deploy_url", "https://deploy.example.com/releases"),
        "json": {"artifact": ctx.data or "{{ workload }}"},
        "timeout": 60,
    }
    step = {
        "step": ctx.name,
        "desc": f"Deploy the {ctx.obj} through workload.deploy_url.",
        "tool": tool,
        "retry": dict(RETRY_HTTP),
    }
    return Built(step, ctx.data, {"http"})


def shell(ctx: PatternContext) -> Built:
    step = {
        "step": ctx.name,
        "desc": "Run a shell command (replace the echo with the real script); "
        "stdout that is JSON becomes result.data.",
        "tool": {
            "kind": "shell",
            "cmds": [f'echo \'{{"step": "{ctx.name}", "ok": true}}\''],
            "timeout": 600,
        },
    }
    return Built(step, ref(f"{ctx.name}.data"))


def child(ctx: PatternContext, path: str | None = None, key: str | None = None) -> Built:
    workload: dict[str, Any] = {}
    if ctx.intent.loop_over:
        workload[key or "item"] = ref(singular(ctx.intent.loop_over))
    elif ctx.data:
        workload[key or "data"] = ctx.data
    step = {
        "step": ctx.name,
        "desc": f"Run the playbook {path or '(choose one)'} as a child execution.",
        "tool": {"kind": "playbook", "path": path or f"drafts/{ctx.obj}", "workload": workload},
    }
    needs = set() if path else {"a child playbook"}
    return Built(step, None if ctx.intent.loop_over else ref(ctx.name), needs)


PATTERNS: dict[str, Callable[[PatternContext], Built]] = {
    "fetch": fetch,
    "query": query,
    "load": load,
    "validate": validate,
    "transform": transform,
    "train": train,
    "evaluate": evaluate,
    "approve": approve,
    "notify": notify,
    "deploy": deploy,
    "shell": shell,
    "child": child,
    "report": report,
}

_SAMPLES = {
    "files": ["a.csv", "b.csv", "c.csv"],
    "customers": ["Ada", "Grace"],
    "regions": ["eu", "us", "apac"],
    "documents": ["The quick brown fox.", "Invoices are due monthly."],
    "users": ["ada", "grace"],
    "urls": ["https://example.com/a", "https://example.com/b"],
}


def sample_items(noun: str) -> list[Any]:
    """A small sample list for ``workload.<noun>`` (the person replaces it)."""
    return list(_SAMPLES.get(noun, [f"{singular(noun)}-1", f"{singular(noun)}-2"]))


def singular(noun: str) -> str:
    if noun.endswith("ies"):
        return noun[:-3] + "y"
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun[:-1]
    return noun + "_item"
