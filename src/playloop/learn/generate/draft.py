"""A draft playbook: its YAML, the validated flow, and what went into it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from playloop.dsl.errors import PlaybookError, Problem
from playloop.dsl.flow import Flow
from playloop.dsl.load import load_text
from playloop.learn.generate.templates import unknown_references

try:
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader  # type: ignore[assignment]

__all__ = ["Draft", "DraftRejected", "check", "to_yaml"]


class DraftRejected(ValueError):
    """The draft is not a valid playbook and could not be repaired."""

    def __init__(self, message: str, problems: list[str], text: str | None = None) -> None:
        self.problems = problems
        self.text = text
        super().__init__(message + "".join(f"\n  {p}" for p in problems))


@dataclass
class Draft:
    """A validated draft. Never registered nor run: a person reviews it first."""

    description: str
    text: str
    flow: Flow
    source: str  # "composer" or "llm"
    attempts: int = 1
    repairs: list[str] = field(default_factory=list)
    grounding: dict[str, Any] = field(default_factory=dict)
    borrowed: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def runnable_offline(self) -> bool:
        """True when no step needs an outside service or a person."""
        return not self.needs

    def how_to_run(self, file: str = "FILE") -> str:
        return f"playloop validate {file} && playloop run {file}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "path": self.flow.path,
            "name": self.flow.name,
            "steps": list(self.flow.steps),
            "content": self.text,
            "source": self.source,
            "attempts": self.attempts,
            "repairs": self.repairs,
            "grounding": self.grounding,
            "borrowed": self.borrowed,
            "needs": self.needs,
            "notes": self.notes,
            "elapsed_ms": round(self.elapsed_ms, 2),
        }


def check(text: str, filename: str = "<draft>") -> Flow:
    """Validate draft text with the DSL loader, and check every name its templates read
    (the loader checks template syntax only). Raises ``PlaybookError``."""
    flow = load_text(text, filename=filename)
    document = yaml.load(text, Loader=SafeLoader)
    problems = [
        Problem(filename, 1, 1, step, "template", f"reads '{name}', which is no step or input")
        for step, name in unknown_references(document)
    ]
    if problems:
        raise PlaybookError(problems)
    return flow


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as ``|`` blocks, short flat lists inline."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    flat = all(isinstance(v, str | int | float | bool) and "\n" not in str(v) for v in value)
    short = len(str(value)) < 70
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat and short)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)


def to_yaml(document: dict[str, Any], header: list[str]) -> str:
    """``document`` as YAML, keys in insertion order, after ``# `` comment lines."""
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2
    )
    comments = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header)
    return comments + body
