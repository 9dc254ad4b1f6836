"""Workload overrides from the command line: ``--set a.b=v`` and ``--payload JSON``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml


class BadOverride(ValueError):
    """A ``--set`` or ``--payload`` value could not be understood."""


def parse_set(item: str) -> tuple[list[str], Any]:
    """``a.b=v`` -> (['a', 'b'], v) with v parsed as a YAML scalar (numbers stay numbers)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise BadOverride(f"--set {item!r}: expected key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise BadOverride(f"--set {item!r}: value is not valid YAML: {exc}") from None
    return [part for part in key.strip().split(".")], value


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_overrides(sets: list[str], payload: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if payload:
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise BadOverride(f"--payload is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadOverride("--payload must be a JSON object")
        result = deep_merge(result, data)
    for item in sets:
        path, value = parse_set(item)
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return result
