"""The playbook JSON Schema exported from the surface models."""

from __future__ import annotations

from typing import Any

from playloop.dsl.schema import json_schema
from playloop.tools import registry


def test_schema_is_draft_2020_12_with_the_top_level_keys() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {
        "apiVersion",
        "kind",
        "metadata",
        "workload",
        "keychain",
        "executor",
        "workbook",
        "workflow",
    }
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "workflow"}
    assert schema["additionalProperties"] is False


def test_step_tool_is_discriminated_by_kind_over_every_registered_kind() -> None:
    schema = json_schema()
    defs: dict[str, Any] = schema["$defs"]
    tool = defs["Step"]["properties"]["tool"]["anyOf"][0]
    assert tool["discriminator"]["propertyName"] == "kind"
    assert set(tool["discriminator"]["mapping"]) == set(registry.kinds())
    http = defs["HttpTool"]
    assert "json" in http["properties"] and "json_body" not in http["properties"]
    assert http["additionalProperties"] is False
    assert set(http["required"]) == {"kind", "url"}
    assert "code" in defs["PythonTool"]["required"]


def test_non_text_config_fields_also_accept_a_template() -> None:
    verify = json_schema()["$defs"]["HttpTool"]["properties"]["verify"]
    assert {"type": "string", "pattern": r"\{\{"} in verify["anyOf"]


def test_schema_names_the_dsl_keys_by_their_aliases() -> None:
    defs = json_schema()["$defs"]
    assert "in" in defs["Loop"]["properties"]
    assert "else" in defs["ElseBlock"]["properties"]
    assert "else" in defs["ArcItem"]["properties"]
    assert set(defs["Step"]["properties"]) >= {"step", "tool", "next", "loop", "retry", "timeout"}
