"""Request and response bodies of the HTTP API.

Ids are 64-bit integers; responses carry them as strings (JSON numbers above 2**53 lose
digits in JavaScript), requests accept a number or a string of digits. Request bodies
reject unknown fields, so a misspelt field is a 422 naming it, not silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from playloop.auth.roles import Role

#: ids are below 2**63 (a signed 64-bit integer); said as ``exclusiveMaximum: 2**63`` because
#: validators that compare large numbers as doubles read ``maximum: 2**63-1`` as 2**63
ID_LIMIT = 2**63


def _integral(value: Any) -> Any:
    """JSON Schema's integers include ``7.0``: take it as 7 (a boolean is not a number)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: a catalog version: an integer (not a boolean or a string) from 1
Version = Annotated[int, Field(strict=True, ge=1, le=2**31 - 1), BeforeValidator(_integral)]


def digits_up_to(limit: int) -> str:
    """A regular expression for the decimal numbers 0..``limit`` (shorter ones may have
    leading zeros): ids as strings are described exactly, not as "up to 19 digits"."""
    text = str(limit)
    parts = [f"[0-9]{{1,{len(text) - 1}}}"] if len(text) > 1 else []
    for i, digit in enumerate(text):
        low = 1 if i == 0 and len(text) > 1 else 0
        if int(digit) > low:
            rest = len(text) - i - 1
            parts.append(
                f"{text[:i]}[{low}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else "")
            )
    parts.append(text)
    return "^(?:" + "|".join(parts) + ")$"


ID_PATTERN = digits_up_to(ID_LIMIT - 1)
_ID_TEXT = re.compile(ID_PATTERN)


def _id_input(value: Any) -> Any:
    """Ids come back as strings (JavaScript cannot hold 64-bit integers): accept those, and
    numbers written with a zero fraction (JSON Schema's integers include ``7.0``); booleans
    and other strings stay themselves, for the strict check to reject."""
    if isinstance(value, str) and _ID_TEXT.fullmatch(value):
        return int(value)
    return _integral(value)


Id = Annotated[
    int,
    Field(ge=0, lt=ID_LIMIT, strict=True),
    BeforeValidator(_id_input),  # runs before the strict check
    WithJsonSchema(
        {
            "description": "A 64-bit id: a number, or its decimal digits as a string.",
            "anyOf": [
                {"type": "integer", "minimum": 0, "exclusiveMaximum": ID_LIMIT},
                {"type": "string", "pattern": ID_PATTERN},
            ],
        }
    ),
]
ExecutionStatus = Literal["running", "paused", "completed", "failed", "cancelled"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _given(name: str) -> dict[str, Any]:
    """A JSON Schema clause: ``name`` is present and not null (null counts as absent)."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


# --- errors -----------------------------------------------------------------------------


class ErrorInfo(BaseModel):
    code: str = Field(description="A stable machine-readable code, e.g. not_found.")
    message: str = Field(description="What went wrong, for a person.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems of an invalid request."
    )
    problems: list[str] | None = Field(
        default=None, description="An invalid playbook's problems, each file:line:col: message."
    )


class ErrorBody(BaseModel):
    error: ErrorInfo


# --- catalog ----------------------------------------------------------------------------


class RegisterRequest(Request):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [_given("content"), _given("content_base64")]},
    )

    content: str | None = Field(default=None, description="The playbook's YAML text.")
    content_base64: str | None = Field(
        default=None, description="The playbook's YAML text, base64-encoded (UTF-8)."
    )
    filename: str | None = Field(
        default=None, max_length=1024, description="A name for the text in error messages."
    )

    @model_validator(mode="after")
    def _one_content(self) -> RegisterRequest:
        if (self.content is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of 'content' and 'content_base64'")
        return self

    def text(self) -> str:
        """The YAML text; ``ValueError`` when ``content_base64`` is not base64 of UTF-8."""
        if self.content is not None:
            return self.content
        try:
            raw = base64.b64decode(self.content_base64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("'content_base64' is not valid base64") from None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("'content_base64' does not decode to UTF-8 text") from None


class RegisterResponse(BaseModel):
    path: str
    version: int
    catalog_id: str
    content_hash: str


class CatalogEntryOut(BaseModel):
    catalog_id: str
    path: str
    version: int
    content_hash: str
    source_file: str | None
    created_at: str


class CatalogEntryWithContent(CatalogEntryOut):
    content: str


class CatalogList(BaseModel):
    items: list[CatalogEntryOut]


# --- executions -------------------------------------------------------------------------


class ExecuteRequest(Request):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {**_given("path"), "not": _given("catalog_id")},
                {
                    **_given("catalog_id"),
                    "not": {
                        "anyOf": [
                            _given("path"),
                            _given("version"),
                        ]
                    },
                },
            ]
        },
    )

    path: str | None = Field(
        default=None, min_length=1, max_length=1024, description="A catalog path."
    )
    catalog_id: Id | None = Field(default=None, description="A catalog entry's id.")
    version: Version | None = Field(
        default=None, description="A catalog version (default: latest)."
    )
    workload: dict[str, Any] | None = Field(
        default=None, description="Merged over the playbook's workload."
    )
    parent_execution_id: Id | None = None

    @model_validator(mode="after")
    def _one_playbook(self) -> ExecuteRequest:
        if (self.path is None) == (self.catalog_id is None):
            raise ValueError("give exactly one of 'path' and 'catalog_id'")
        if self.catalog_id is not None and self.version is not None:
            raise ValueError("'version' goes with 'path'; a catalog_id names one version")
        return self


class ExecuteResponse(BaseModel):
    execution_id: str
    status: str
    playbook_path: str
    playbook_version: str | None


class ExecutionOut(BaseModel):
    execution_id: str
    playbook_path: str
    playbook_version: str | None
    parent_execution_id: str | None
    status: str
    started_at: str
    ended_at: str | None
    error_message: str | None


class ExecutionPage(BaseModel):
    items: list[ExecutionOut]
    limit: int
    offset: int
    has_more: bool
    next_offset: int | None = Field(description="The offset of the next page, if any.")


class StepSummary(BaseModel):
    status: str
    attempts: int
    duration_ms: int | None
    result: Any = None


class FailureSummary(BaseModel):
    step: str | None
    type: str | None
    message: str | None


class ExecutionSummary(BaseModel):
    execution_id: str
    status: str
    playbook_path: str
    playbook_version: str | None
    steps: dict[str, StepSummary]
    result: Any = None
    events: int
    started_at: str | None
    ended_at: str | None
    parent_execution_id: str | None = None
    error: FailureSummary | None = None


class CancelRequest(Request):
    reason: str | None = Field(default=None, max_length=2000)


class CancelResponse(BaseModel):
    execution_id: str
    status: str


# --- events -----------------------------------------------------------------------------


class EventOut(BaseModel):
    event_id: str
    execution_id: str
    seq: int
    parent_execution_id: str | None
    parent_event_id: str | None
    playbook_path: str
    playbook_version: str | None
    event_type: str
    step_name: str | None
    status: str | None
    attempt: int | None
    iteration: int | None
    duration_ms: int | None
    error_type: str | None
    error_message: str | None
    context: Any = None
    result: Any = None
    meta: dict[str, Any] | None
    actor: str | None
    created_at: str


class EventPage(BaseModel):
    items: list[EventOut]
    after_seq: int
    limit: int
    has_more: bool
    next_after_seq: int = Field(description="Pass as after_seq for the next page.")


# --- tokens and health ------------------------------------------------------------------


class TokenCreateRequest(Request):
    role: Role
    name: str | None = Field(default=None, min_length=1, max_length=200)


class TokenOut(BaseModel):
    token_id: str
    name: str
    role: Role
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class TokenCreated(TokenOut):
    token: str = Field(description="The token; shown only this once.")


class TokenList(BaseModel):
    items: list[TokenOut]


class Health(BaseModel):
    status: Literal["ok", "error"]
    db: str = Field(description="'ok', or what is wrong with the database.")
    version: str
