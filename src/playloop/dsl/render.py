"""Sandboxed Jinja2 rendering of playbook templates.

A string that is exactly one ``{{ expression }}`` keeps the expression's type
(``"{{ numbers }}"`` renders to a list); any other string renders to a string. Compiled
templates are cached by source text, so a template used by every run is parsed once.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Undefined, meta, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment

_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


class TemplateError(ValueError):
    """A template could not be rendered."""

    def __init__(self, message: str, template: str, step: str | None = None) -> None:
        where = f"step '{step}': " if step else ""
        super().__init__(f"{where}template {template!r}: {message}")
        self.template = template
        self.step = step
        self.reason = message


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, default=str, sort_keys=False)


def _fromjson(value: str) -> Any:
    return json.loads(value)


def _b64encode(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def _b64decode(value: str) -> str:
    return base64.b64decode(value).decode()


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _DataFirstEnvironment(SandboxedEnvironment):
    """Mapping keys win over attributes: ``workload.items`` is the key, not ``dict.items``."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


def _make_env() -> SandboxedEnvironment:
    env = _DataFirstEnvironment(undefined=StrictUndefined, autoescape=False, cache_size=2000)
    env.filters.update(
        tojson=_tojson, fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode
    )
    env.globals["now"] = _now
    return env


ENV = _make_env()

Compiled = Callable[[Mapping[str, Any]], Any]


#: ``{{ name.key.key }}``: most templates in playbooks are just this
_PATH = re.compile(r"^\s*([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)\s*$")
#: names Jinja reads as literals, not variables
_LITERALS = frozenset({"true", "false", "none", "True", "False", "None"})


def _path_lookup(name: str, keys: tuple[str, ...], jinja: Compiled) -> Compiled:
    """``{{ a.b.c }}`` as dict lookups, Jinja's own answer whenever one is not a plain key.

    A new Jinja context per evaluation costs more than the rest of a chain step's decision;
    a dotted path through dicts (workload, a step's result) needs none. Anything else (a
    missing key, an attribute, a global such as ``now``) goes to the compiled expression,
    so the value and the error are Jinja's.
    """

    def evaluate(ctx: Mapping[str, Any]) -> Any:
        value = ctx.get(name, _MISSING)
        for key in keys:
            if type(value) is not dict or key not in value:
                return jinja(ctx)
            value = value[key]
        return jinja(ctx) if value is _MISSING else value

    return evaluate


_MISSING = object()


@lru_cache(maxsize=8192)
def compile_template(source: str) -> Compiled:
    """Compile once; raise ``TemplateError`` for a syntax error."""
    try:
        single = _SINGLE.match(source)
        if single and "{{" not in single.group("expr") and "}}" not in single.group("expr"):
            expr = ENV.compile_expression(single.group("expr"), undefined_to_none=False)

            def jinja(ctx: Mapping[str, Any]) -> Any:
                return expr(**ctx)

            path = _PATH.match(single.group("expr"))
            if path and path.group(1) not in _LITERALS:
                keys = tuple(path.group(2).split(".")[1:])
                return _path_lookup(path.group(1), keys, jinja)
            return jinja
        template = ENV.from_string(source)
        return lambda ctx: template.render(ctx)
    except JinjaTemplateError as exc:
        raise TemplateError(str(exc), source) from None


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def render(value: Any, context: Mapping[str, Any], *, step: str | None = None) -> Any:
    """Render every template string inside ``value`` (dicts and lists are walked)."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            result = compile_template(value)(context)
        except TemplateError as exc:
            raise TemplateError(exc.reason, value, step) from None
        except Exception as exc:  # undefined names, sandbox violations, type errors
            raise TemplateError(f"{type(exc).__name__}: {exc}", value, step) from None
        try:
            return _plain(result)
        except Exception as exc:
            raise TemplateError(f"{type(exc).__name__}: {exc}", value, step) from None
    if isinstance(value, Mapping):
        return {k: render(v, context, step=step) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, context, step=step) for v in value]
    return value


def truthy(value: Any, context: Mapping[str, Any], *, step: str | None = None) -> bool:
    """Evaluate a ``when:`` condition: a template or a literal; strings 'false'/'0'/'' are false."""
    result = render(value, context, step=step)
    if isinstance(result, str):
        return result.strip().lower() not in ("", "false", "0", "none", "no", "off")
    return bool(result)


def _plain(value: Any) -> Any:
    """Plain Python values: an undefined (anywhere inside) is an error; Markup -> str."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if type(value) is not str and isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def referenced_names(source: str) -> set[str]:
    """Top-level names a template reads (for load-time checks of unknown step references)."""
    try:
        tree = ENV.parse(source)
    except JinjaTemplateError as exc:
        raise TemplateError(str(exc), source) from None
    return set(meta.find_undeclared_variables(tree))


def referenced_attributes(source: str) -> set[tuple[str, str]]:
    """``(name, attribute)`` pairs like ``('workload', 'threshold')`` a template reads."""
    try:
        tree = ENV.parse(source)
    except JinjaTemplateError as exc:
        raise TemplateError(str(exc), source) from None
    pairs: set[tuple[str, str]] = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            pairs.add((node.node.name, node.attr))
    return pairs
