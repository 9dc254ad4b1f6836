"""The deterministic composer: a description's intents -> a playbook, no LLM.

For each intent, in the description's order, the composer takes a step from the retrieved
catalog playbooks when one fits (same tool kind, a name or table that shares a word with the
intent, templates that only read the workload or steps already borrowed from the same
playbook, and runs that finished: the steps that worked), else the pattern library's step. Steps are chained with
``next`` arcs; an approval after a validation becomes a gate on the score; ``for each X``
puts a loop on its step; schedule phrases become a ``schedule`` label.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from playloop.learn.generate.grounding import Example, Grounding, StepRecord
from playloop.learn.generate.intents import Intent, Parsed
from playloop.learn.generate.patterns import (
    PATTERNS,
    Built,
    PatternContext,
    child,
    ref,
    sample_items,
    singular,
)
from playloop.learn.generate.templates import rename_steps, step_free_names

__all__ = ["Composition", "compose"]

#: intent kind -> the tool kinds a catalog step must have to stand in for it
_KINDS: dict[str, tuple[str, ...]] = {
    "fetch": ("http",),
    "query": ("sqlite", "duckdb", "postgres"),
    "load": ("sqlite", "duckdb", "postgres"),
    "validate": ("python",),
    "transform": ("python",),
    "train": ("python",),
    "evaluate": ("python",),
    "approve": ("approval",),
    "notify": ("http",),
    "deploy": ("http",),
    "shell": ("shell",),
    "report": ("python",),
}
#: names a borrowed step's templates may read besides the workload
_CONTEXT = frozenset(
    {"workload", "execution_id", "playbook", "now", "vars", "loop", "iter", "tojson"}
)
_SERVICES = {"http": "http", "postgres": "postgres", "approval": "a person (approval)"}


@dataclass
class Composition:
    """The composed playbook (surface form) and what went into it."""

    document: dict[str, Any]
    needs: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    borrowed: list[str] = field(default_factory=list)
    #: draft step name -> the pattern step to fall back to if the borrowed one is invalid
    fallbacks: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _State:
    parsed: Parsed
    grounding: Grounding
    workload: dict[str, Any] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    #: source playbook -> {source step: draft step}
    renames: dict[str, dict[str, str]] = field(default_factory=dict)
    used: set[tuple[str, str]] = field(default_factory=set)
    out: Composition = field(default_factory=lambda: Composition({}))


def compose(parsed: Parsed, grounding: Grounding, *, name: str) -> Composition:
    """A playbook for ``parsed`` grounded in ``grounding``; ``name`` is its metadata name."""
    st = _State(parsed, grounding)
    intents = parsed.intents or [Intent("transform", "process", None, 0)]
    if not parsed.intents:
        st.out.notes.append("no action recognised in the description: one python step to fill in")
    gate_keys = _gate_keys(intents, parsed)
    steps: list[dict[str, Any]] = []
    outputs: list[str | None] = []
    data: str | None = None
    for index, intent in enumerate(intents):
        step_name = _unique(st, _step_name(intent))
        gate_key = gate_keys.get(index)
        built = _borrow(st, intent, step_name, data, gate_key) or _pattern(
            st, intent, step_name, data, gate_key
        )
        if intent.loop_over and intent.kind not in ("approve", "report"):
            _add_loop(st, built, intent)
            if built.output is None:
                built.output = ref(step_name)
        steps.append(built.step)
        outputs.append(built.output)
        st.out.needs |= built.needs
        if built.output is not None:
            data = built.output
    steps = _wire(st, intents, steps, gate_keys)
    metadata: dict[str, Any] = {
        "name": name,
        "path": f"drafts/{name}",
        "description": parsed.description.strip()[:500],
    }
    if parsed.schedule:
        metadata["labels"] = {"schedule": parsed.schedule}
        st.out.notes.append(
            f"'{parsed.schedule_phrase}': playloop does not schedule runs; run it from cron "
            f"({parsed.schedule}) or your scheduler with `playloop run FILE`"
        )
    document: dict[str, Any] = {"apiVersion": "noetl.io/v2", "kind": "Playbook"}
    document["metadata"] = metadata
    if st.workload:
        document["workload"] = st.workload
    document["workflow"] = steps
    st.out.document = document
    return st.out


def _step_name(intent: Intent) -> str:
    verb = {"approve": "review", "child": "run", "shell": "run", "notify": "notify"}.get(
        intent.kind, intent.verb
    )
    verb = re.sub(r"[^a-z0-9]+", "_", verb.lower()).strip("_") or intent.kind
    obj = intent.obj
    if intent.kind == "shell" and not obj:
        obj = "script"
    return f"{verb}_{obj}" if obj and obj != verb else verb


def _unique(st: _State, base: str) -> str:
    base = re.sub(r"[^a-z0-9_]", "_", base)[:48].strip("_") or "step"
    if base[0].isdigit():
        base = "s_" + base
    candidate, n = base, 2
    while candidate in st.names or candidate in ("rejected",):
        candidate, n = f"{base}_{n}", n + 1
    st.names.add(candidate)
    return candidate


def _gate_keys(intents: list[Intent], parsed: Parsed) -> dict[int, str]:
    """Index of a step whose result a later approval gates on -> the key it reads."""
    conditional = parsed.threshold is not None or re.search(
        r"\b(?:if|when|below|under|low|lower|fails?)\b", parsed.description.lower()
    )
    keys: dict[int, str] = {}
    for i, intent in enumerate(intents):
        if intent.kind != "approve" or i == 0 or not conditional:
            continue
        before = intents[i - 1]
        if before.kind in ("validate", "evaluate"):
            keys[i - 1] = "quality_score" if before.kind == "validate" else "score"
    return keys


def _approvers(description: str) -> str:
    text = description.lower()
    found = re.search(
        r"\b(?:ask|have|let|by|from|needs?)\s+(?:a|an|the|our)?\s*((?:[a-z]+\s)?[a-z]+?)s?\s+"
        r"(?:to\s|approve|review|sign)",
        text,
    )
    if found:
        role = re.sub(r"[^a-z]+", "-", found.group(1).strip()).strip("-")
        if role and role not in ("person", "human", "someone"):
            return role + "s"
    return "reviewers"


def _pattern(
    st: _State, intent: Intent, name: str, data: str | None, gate_key: str | None
) -> Built:
    ctx = PatternContext(
        name=name,
        intent=intent,
        data=ref(singular(intent.loop_over)) if intent.loop_over else data,
        workload=st.workload,
        approvers=_approvers(st.parsed.description),
        gate_key=gate_key,
    )
    if intent.kind == "child":
        path, key = _child_target(st, intent)
        return child(ctx, path, key)
    built = PATTERNS[intent.kind](ctx)
    if intent.kind in ("fetch", "notify", "deploy"):
        _ground_retry(st, built)
        if st.parsed.url and intent.kind == "fetch":
            st.workload["api_url"] = st.parsed.url
    return built


def _ground_retry(st: _State, built: Built) -> None:
    """Take the retry policy of the best catalog http step that worked, if any."""
    for _example, record in st.grounding.ranked_steps():
        retry = record.body.get("retry")
        if record.kind == "http" and isinstance(retry, dict) and record.finished > 0:
            built.step["retry"] = copy.deepcopy(retry)
            built.step["desc"] += f" Retry policy from {record.evidence()}."
            st.out.borrowed.append(f"retry of {record.evidence()}")
            return


def _child_target(st: _State, intent: Intent) -> tuple[str | None, str | None]:
    """The catalog playbook a ``run the X playbook`` names (or the most similar one)."""
    named = re.search(r"run the ([\w-]+) playbook", st.parsed.description.lower())
    wanted = named.group(1).replace("-", "_") if named else intent.obj
    best: Example | None = None
    for example in st.grounding.examples:
        leaf = example.path.rsplit("/", 1)[-1]
        if wanted and (leaf == wanted or wanted in leaf):
            best = example
            break
    if best is None:
        st.out.notes.append("no catalog playbook matched the child step: set its tool.path")
        return None, None
    key = next(iter(best.workload), None)
    st.out.borrowed.append(f"child playbook {best.path} (similarity {best.score:.2f})")
    for record in best.steps:
        if record.kind in _SERVICES:
            st.out.needs.add(_SERVICES[record.kind])
    return best.path, key


def _borrow(
    st: _State, intent: Intent, name: str, data: str | None, gate_key: str | None
) -> Built | None:
    """A catalog step that can stand in for ``intent`` as it is, or None."""
    kinds = _KINDS.get(intent.kind)
    if not kinds or intent.loop_over:
        return None
    words = {w[:5] for w in (intent.verb, intent.obj or "", intent.kind) if len(w) > 2}
    actions = {w[:5] for w in (intent.verb, intent.kind) if len(w) > 2}
    for example, record in st.grounding.ranked_steps():
        if (example.path, record.name) in st.used or record.kind not in kinds:
            continue
        if not record.finished:
            continue  # only steps that worked: finished at least once
        if intent.kind == "query" and intent.dialect and record.kind != intent.dialect:
            continue
        if intent.kind in ("query", "load") and not _sql_matches(intent.kind, record.body):
            continue
        if intent.kind == "notify" and _method(record.body) == "GET":
            continue
        if intent.kind == "fetch" and _method(record.body) != "GET":
            continue
        if not (actions if record.kind == "python" else words) & _name_words(record):
            continue  # nothing in common with what the description asks for
        if gate_key and gate_key not in str(record.body.get("tool", {}).get("code", "")):
            continue
        body = _adapt(st, example, record, name)
        if body is None:
            continue
        st.used.add((example.path, record.name))
        st.renames.setdefault(example.path, {})[record.name] = name
        st.out.borrowed.append(f"{name} from {record.evidence()}")
        st.out.fallbacks[name] = _pattern(st, intent, name, data, gate_key).step
        output = ref(f"{name}.rows") if record.kind in ("sqlite", "duckdb", "postgres") else None
        if record.kind == "http":
            output = ref(f"{name}.data")
        needs = {_SERVICES[record.kind]} if record.kind in _SERVICES else set()
        return Built(body, output, needs)
    return None


def _method(body: dict[str, Any]) -> str:
    tool = body.get("tool") or {}
    return str(tool.get("method", "GET")).upper()


def _sql_matches(kind: str, body: dict[str, Any]) -> bool:
    tool = body.get("tool") or {}
    sql = f"{tool.get('command') or ''} {tool.get('query') or ''}".upper()
    writes = bool(re.search(r"\b(?:INSERT|UPDATE|MERGE|COPY)\b", sql)) or "table" in tool
    return writes if kind == "load" else bool(re.search(r"\bSELECT\b", sql)) and not writes


def _name_words(record: StepRecord) -> set[str]:
    tool = record.body.get("tool") or {}
    sql = f"{tool.get('command') or ''} {tool.get('query') or ''} {tool.get('table') or ''}"
    tables = " ".join(re.findall(r"(?:FROM|INTO|TABLE|EXISTS)\s+([A-Za-z_]\w*)", sql, re.I))
    text = f"{record.name} {record.body.get('desc') or ''} {tables}".lower()
    return {w[:5] for w in re.findall(r"[a-z]{3,}", text)}


def _adapt(st: _State, example: Example, record: StepRecord, name: str) -> dict[str, Any] | None:
    """The step renamed for the draft, with the workload keys it reads; None if it reads
    anything the draft will not have."""
    body = {k: copy.deepcopy(v) for k, v in record.body.items() if k not in ("next", "step")}
    renames = st.renames.get(example.path, {})
    body = rename_steps(body, renames)
    inputs = set((body.get("tool") or {}).get("input", {}) or {})
    free = step_free_names(body) - inputs - _CONTEXT - set(renames.values())
    if "args" in free:
        return None
    if free:
        return None
    for key in _workload_keys(body):
        if key not in example.workload:
            return None
        st.workload.setdefault(key, copy.deepcopy(example.workload[key]))
    desc = body.pop("desc", None) or body.pop("description", None)
    head = {"step": name, "desc": f"From {record.evidence()}" + (f": {desc}" if desc else ".")}
    return {**head, **body}


def _workload_keys(body: dict[str, Any]) -> set[str]:
    return set(re.findall(r"workload\.([A-Za-z_][A-Za-z0-9_]*)", str(body)))


def _add_loop(st: _State, built: Built, intent: Intent) -> None:
    assert intent.loop_over is not None
    noun = intent.loop_over
    st.workload.setdefault(noun, sample_items(noun))
    built.step["loop"] = {
        "in": ref(f"workload.{noun}"),
        "iterator": singular(noun),
        "spec": {"mode": "parallel", "max_in_flight": 4},
    }
    st.out.notes.append(f"workload.{noun} is a sample list: pass the real one with --payload")


def _wire(
    st: _State, intents: list[Intent], steps: list[dict[str, Any]], gate_keys: dict[int, str]
) -> list[dict[str, Any]]:
    """Chain the steps with ``next`` arcs; approvals branch to a ``rejected`` end."""
    rejected = False
    count = len(steps)
    for i, step in enumerate(steps):
        following = steps[i + 1]["step"] if i + 1 < count else None
        if intents[i].kind == "approve":
            rejected = True
            arcs: list[dict[str, Any]] = [
                {
                    "when": "{{ decision.action != 'approve' }}",
                    "then": [{"step": "rejected"}],
                }
            ]
            if following:
                arcs.append({"else": [{"step": following}]})
            step["next"] = arcs
        elif i in gate_keys and following and intents[i + 1].kind == "approve":
            after = steps[i + 2]["step"] if i + 2 < count else None
            threshold = st.parsed.threshold if st.parsed.threshold is not None else 0.9
            st.workload.setdefault("threshold", threshold)
            key = gate_keys[i]
            gate: list[dict[str, Any]] = [
                {
                    "when": ref(f"{step['step']}.{key} < workload.threshold"),
                    "then": [
                        {
                            "step": following,
                            "args": {
                                "issue": key.replace("_", " ")
                                + " "
                                + ref(f"{step['step']}.{key}")
                                + " is below "
                                + ref("workload.threshold")
                            },
                        }
                    ],
                }
            ]
            if after:
                gate.append({"else": [{"step": after}]})
            step["next"] = gate
        elif following:
            step["next"] = [{"step": following}]
    if rejected:
        steps.append(
            {
                "step": "rejected",
                "desc": "The reviewer said no: end here.",
                "tool": {"kind": "noop", "result": {"approved": False}},
            }
        )
    return steps
