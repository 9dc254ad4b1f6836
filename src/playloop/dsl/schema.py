"""The playbook JSON Schema (Draft 2020-12), exported from the surface models.

``dsl.model.Tool`` is open (its extra keys are the kind's config); for the schema each
registered tool kind gets its own closed model, ``kind`` plus that kind's ``Config``
fields plus ``input``/``spec``, and a step's ``tool`` is their union discriminated by
``kind``. Third-party kinds appear as soon as they are registered.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, Field, create_model

from playloop.dsl import model
from playloop.tools import registry

__all__ = ["json_schema"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a playbook (a fresh copy each call)."""
    return {"$schema": DRAFT, **_playbook_model().model_json_schema(by_alias=True)}


#: a config value may be a template whatever the field's type; it is checked once rendered
_Template = Annotated[str, Field(pattern=r"\{\{")]


def _tool_model(kind: str) -> type[BaseModel]:
    config = registry.tool_class(kind).Config
    title = "".join(part.capitalize() for part in kind.replace("-", "_").split("_"))
    fields: dict[str, Any] = {
        name: (info.annotation | _Template, info)
        for name, info in config.model_fields.items()
        if not _accepts_text(info.annotation)
    }
    fields["kind"] = (Literal[kind], ...)
    fields["input"] = (dict[str, Any], Field(default_factory=dict))
    fields["spec"] = (model.ToolSpec | None, None)
    return create_model(f"{title}Tool", __base__=config, __module__=__name__, **fields)


def _accepts_text(annotation: Any) -> bool:
    return annotation in (str, Any) or str in get_args(annotation)


@cache
def _playbook_model() -> type[BaseModel]:
    members = tuple(_tool_model(kind) for kind in registry.kinds())
    tool = Annotated[Union[members], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
    step = create_model("Step", __base__=model.Step, __module__=__name__, tool=(tool | None, None))
    entry = create_model(
        "WorkbookEntry", __base__=model.WorkbookEntry, __module__=__name__, tool=(tool, ...)
    )
    return create_model(
        "Playbook",
        __base__=model.Playbook,
        __module__=__name__,
        workbook=(list[entry] | None, None),
        workflow=(Annotated[list[step], Field(min_length=1)], ...),
    )
