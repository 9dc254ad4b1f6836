"""The playbook surface syntax as pydantic models: what a user may write.

These models check shapes and types and feed the JSON Schema (``dsl.schema``);
``dsl.normalize`` turns a validated ``Playbook`` into the engine's ``Flow``. Every model
forbids unknown keys. When validated with ``context={UNKNOWN_KEYS: []}`` an unknown key
is recorded in that list (with the mapping it sits in and the keys allowed there) and
dropped, so the rest of the mapping is still checked and the key can be reported with a
"did you mean" hint at its own line. ``Tool`` is the one open model: its extra keys are
the tool kind's config, checked against that kind's ``Config`` by ``dsl.normalize``.

Unions of shapes (``next:`` and its items) pick their member with a discriminator
function, so an error names one member only; member tags are written ``<like-this>`` and
never collide with a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from playloop.dsl.durations import parse_duration
from playloop.dsl.render import is_template

__all__ = [
    "UNKNOWN_KEYS",
    "AnomalyOptions",
    "ArcItem",
    "AutoTimeout",
    "CanonicalNext",
    "ElseBlock",
    "Executor",
    "ExecutorSpec",
    "Loop",
    "LoopOptions",
    "Metadata",
    "NextOptions",
    "OnAnomaly",
    "Playbook",
    "Policy",
    "Retry",
    "Rule",
    "RuleThen",
    "Step",
    "Target",
    "Tool",
    "ToolSpec",
    "UnknownKeys",
    "WhenBlock",
    "WorkbookEntry",
    "allowed_keys",
]

#: the validation-context key under which unknown keys are collected
UNKNOWN_KEYS = "unknown_keys"


@dataclass(frozen=True, slots=True)
class UnknownKeys:
    """Keys of ``mapping`` that its model does not know; ``allowed`` are the ones it does."""

    mapping: dict[Any, Any]
    keys: tuple[Any, ...]
    allowed: tuple[str, ...]


@cache
def allowed_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys a user may write in a mapping of this model (aliases where set)."""
    return tuple(f.alias or name for name, f in model.model_fields.items())


class Surface(BaseModel):
    """Base of the surface models: unknown keys are errors (collected, see module doc)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _collect_unknown_keys(cls, data: Any, info: ValidationInfo) -> Any:
        sink = info.context.get(UNKNOWN_KEYS) if isinstance(info.context, dict) else None
        if sink is None or not isinstance(data, dict) or cls.model_config.get("extra") != "forbid":
            return data
        allowed = allowed_keys(cls)
        unknown = tuple(k for k in data if k not in allowed)
        if not unknown:
            return data
        sink.append(UnknownKeys(data, unknown, allowed))
        return {k: v for k, v in data.items() if k in allowed}


# --- scalar types -----------------------------------------------------------------------


def _text(value: Any) -> Any:
    """A version may be written as a number (``version: 2``); keep it as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _items(value: Any) -> Any:
    if isinstance(value, list) or is_template(value):
        return value
    raise ValueError("must be a list or a '{{ ... }}' template")


_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {
            "type": "string",
            "pattern": r"^\s*(\d+(\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?(\s*(\d+(\.\d+)?|\.\d+)\s*(ms|s|m|h|d))*\s*$",
        },
    ],
    "description": "seconds, or a number with a unit: 500ms, 2s, 1.5m, 4h, 1d, 1h30m",
}

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
Timeout = Annotated[
    float, BeforeValidator(parse_duration), Field(gt=0), WithJsonSchema(_DURATION_SCHEMA)
]


class AutoTimeout(BaseModel):
    """``timeout: auto`` or ``{auto: true, min, max}``: learned from the step's durations."""

    model_config = ConfigDict(extra="forbid")
    auto: Literal[True]
    min: Timeout = 1.0
    max: Timeout = 600.0

    @model_validator(mode="after")
    def _bounds(self) -> AutoTimeout:
        if self.max < self.min:
            raise ValueError("max is shorter than min")
        return self


def _step_timeout(value: Any) -> Any:
    """``auto`` and ``{auto: true, ...}`` become ``AutoTimeout``; a duration stays a number."""
    if isinstance(value, str) and value.strip() == "auto":
        return AutoTimeout(auto=True)
    if isinstance(value, dict):
        if value.get("auto") is not True:
            raise ValueError("a timeout mapping needs 'auto: true' (or write a duration)")
        unknown = sorted(set(value) - {"auto", "min", "max"})
        if unknown:
            raise ValueError(f"unknown key '{unknown[0]}' in an auto timeout (min, max)")
        return AutoTimeout.model_validate(value)
    if isinstance(value, AutoTimeout):
        return value
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("Input should be greater than 0")
    return seconds


_AUTO_TIMEOUT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        _DURATION_SCHEMA,
        {"const": "auto"},
        {
            "type": "object",
            "properties": {
                "auto": {"const": True},
                "min": _DURATION_SCHEMA,
                "max": _DURATION_SCHEMA,
            },
            "required": ["auto"],
            "additionalProperties": False,
        },
    ],
    "description": "a duration, or 'auto' / {auto: true, min, max}: learned from history",
}
StepTimeout = Annotated[
    float | AutoTimeout, BeforeValidator(_step_timeout), WithJsonSchema(_AUTO_TIMEOUT_SCHEMA)
]
Fraction = Annotated[float, Field(ge=0, le=1)]
Attempts = Annotated[int, Field(ge=1)]
Name = Annotated[str, Field(min_length=1)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Version = Annotated[str, BeforeValidator(_text), WithJsonSchema({"type": ["string", "number"]})]
LoopItems = Annotated[
    Any,
    AfterValidator(_items),
    WithJsonSchema({"anyOf": [{"type": "array"}, {"type": "string", "pattern": r"\{\{"}]}),
]
Backoff = Literal["none", "linear", "exponential"]


# --- retry, policy, loop ------------------------------------------------------------------


class Retry(Surface):
    """``attempts`` counts every attempt, the first included.

    ``retry: auto`` (or ``{auto: true, max_attempts, delay, max_delay}``) learns whether and
    how to retry per error class (see docs/learned-policies.md); ``max_attempts`` and
    ``max_delay`` bound it, ``delay`` is the first delay of its default backoff.
    """

    attempts: Attempts | None = None
    delay: Duration = 0.0
    backoff: Backoff = "none"
    max_delay: Duration | None = None
    jitter: Fraction = 0.0
    on: list[str] = Field(default_factory=list)
    auto: bool = False
    max_attempts: Attempts | None = None

    @model_validator(mode="before")
    @classmethod
    def _auto_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data.strip() == "auto":
                return {"auto": True}
            raise ValueError(f"must be a mapping or 'auto', not {data!r}")
        return data

    @model_validator(mode="after")
    def _delays(self) -> Retry:
        if self.max_delay is not None and self.max_delay < self.delay:
            raise ValueError("max_delay is shorter than delay")
        if self.auto:
            given = self.model_fields_set
            for name in ("attempts", "backoff", "jitter", "on"):
                if name in given:
                    bound = " (bound it with 'max_attempts')" if name == "attempts" else ""
                    raise ValueError(f"'{name}' does not combine with 'auto: true'{bound}")
        else:
            if self.max_attempts is not None:
                raise ValueError("'max_attempts' goes with 'auto: true' (else use 'attempts')")
            if self.attempts is None:
                raise ValueError("needs 'attempts' (or 'auto: true', or write 'retry: auto')")
        return self


class RuleThen(Surface):
    do: Literal["retry", "continue", "fail", "jump"]
    #: ``learned``: retry per error class from the statistics, ``attempts`` a bound
    mode: Literal["fixed", "learned"] = "fixed"
    attempts: Attempts | None = None
    delay: Duration = 0.0
    backoff: Backoff = "none"
    max_delay: Duration | None = None
    jitter: Fraction = 0.0
    to: Name | None = None

    @model_validator(mode="after")
    def _jump_target(self) -> RuleThen:
        if self.do == "jump" and self.to is None:
            raise ValueError("'do: jump' needs 'to' naming the step to jump to")
        if self.do != "jump" and self.to is not None:
            raise ValueError(f"'to' is only for 'do: jump' (this rule does '{self.do}')")
        if self.mode == "learned" and self.do != "retry":
            raise ValueError(
                f"'mode: learned' is only for 'do: retry' (this rule does '{self.do}')"
            )
        return self


class Rule(Surface):
    when: str | None = None
    then: RuleThen


class Policy(Surface):
    rules: list[Rule] = Field(default_factory=list)


class LoopOptions(Surface):
    mode: Literal["sequential", "parallel"] = "sequential"
    max_in_flight: Attempts | None = None


class Loop(Surface):
    items: LoopItems = Field(alias="in")
    iterator: Identifier = "item"
    spec: LoopOptions = Field(default_factory=LoopOptions)


# --- tools ------------------------------------------------------------------------------


class ToolSpec(Surface):
    timeout: StepTimeout | None = None
    pool: str | None = None
    policy: Policy | None = None


class Tool(Surface):
    """``kind`` plus that kind's config keys (checked per kind by ``dsl.normalize``)."""

    model_config = ConfigDict(extra="allow")
    kind: Name
    input: dict[str, Any] = Field(default_factory=dict)
    spec: ToolSpec | None = None

    @property
    def config(self) -> dict[str, Any]:
        """The kind's own config: the mapping minus ``kind``, ``input`` and ``spec``."""
        return dict(self.model_extra or {})


class WorkbookEntry(Surface):
    name: Name
    description: str | None = None
    tool: Tool


# --- routing ------------------------------------------------------------------------------


class Target(Surface):
    """Seed form: go to ``step`` with ``args``."""

    step: Name
    args: dict[str, Any] = Field(default_factory=dict)


def _then_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "<name>"
    if isinstance(value, dict | Target):
        return "<target>"
    return None


ThenItem = Annotated[
    Annotated[Name, Tag("<name>")] | Annotated[Target, Tag("<target>")],
    Discriminator(
        _then_form,
        custom_error_type="then_item",
        custom_error_message="must be a step name or a mapping {step, args}",
    ),
]


class WhenBlock(Surface):
    """Seed form: when ``when`` holds, go to every target under ``then``."""

    when: str
    then: Annotated[list[ThenItem], Field(min_length=1)]


class ElseBlock(Surface):
    """Seed form: go to these targets when no ``when`` block matched."""

    else_: Annotated[list[ThenItem], Field(min_length=1)] = Field(alias="else")


def _next_item_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "<name>"
    if isinstance(value, dict):
        if "when" in value or "then" in value:
            return "<when>"
        return "<else>" if "else" in value else "<target>"
    for form, tag in ((WhenBlock, "<when>"), (ElseBlock, "<else>"), (Target, "<target>")):
        if isinstance(value, form):
            return tag
    return None


NextItem = Annotated[
    Annotated[Name, Tag("<name>")]
    | Annotated[WhenBlock, Tag("<when>")]
    | Annotated[ElseBlock, Tag("<else>")]
    | Annotated[Target, Tag("<target>")],
    Discriminator(
        _next_item_form,
        custom_error_type="next_item",
        custom_error_message="must be a step name, {when, then}, {else} or {step, args}",
    ),
]


class ArcItem(Surface):
    """Canonical form: one arc; no ``when`` is unconditional, ``else: true`` the fallback."""

    step: Name
    when: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    args: dict[str, Any] = Field(default_factory=dict)
    else_: bool = Field(default=False, alias="else")

    @model_validator(mode="after")
    def _else_has_no_when(self) -> ArcItem:
        if self.else_ and self.when is not None:
            raise ValueError("an arc has either 'when' or 'else: true', not both")
        return self


class NextOptions(Surface):
    mode: Literal["exclusive", "inclusive"] = "exclusive"


class CanonicalNext(Surface):
    spec: NextOptions = Field(default_factory=NextOptions)
    arcs: Annotated[list[ArcItem], Field(min_length=1)]


def _next_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "<name>"
    if isinstance(value, list):
        return "<list>"
    if isinstance(value, dict | CanonicalNext):
        return "<arcs>"
    return None


Next = Annotated[
    Annotated[Name, Tag("<name>")]
    | Annotated[list[NextItem], Tag("<list>")]
    | Annotated[CanonicalNext, Tag("<arcs>")],
    Discriminator(
        _next_form,
        custom_error_type="next",
        custom_error_message="must be a step name, a list of next items or {spec, arcs}",
    ),
]


# --- anomalies ------------------------------------------------------------------------------

AnomalyKind = Literal["duration", "failure_rate", "result_drift"]


class AnomalyOptions(Surface):
    """Per-step anomaly detection: ``enabled: false`` opts out; the rest tunes it."""

    enabled: bool = True
    threshold: Annotated[float, Field(gt=0)] | None = None
    min_samples: Annotated[int, Field(ge=2)] | None = None
    fields: Annotated[list[Name], Field(min_length=1)] | None = None


class OnAnomaly(Surface):
    """Route to ``step`` instead of ``next`` when the step had an anomaly (of ``kinds``)."""

    step: Name
    kinds: Annotated[list[AnomalyKind], Field(min_length=1)] | None = None


# --- steps and the playbook ----------------------------------------------------------------


class Step(Surface):
    step: Name
    desc: str | None = None
    description: str | None = None
    tool: Tool | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    next: Next | None = None
    loop: Loop | None = None
    retry: Retry | None = None
    timeout: StepTimeout | None = None
    pool: str | None = None
    anomaly: AnomalyOptions | None = None
    on_anomaly: OnAnomaly | None = None


class Metadata(Surface):
    name: Name
    path: str | None = None
    version: Version | None = None
    description: str | None = None
    labels: dict[str, Any] = Field(default_factory=dict)


class ExecutorSpec(Surface):
    entry_step: Name | None = None
    profile: str | None = None
    pool: str | None = None


class Executor(Surface):
    spec: ExecutorSpec = Field(default_factory=ExecutorSpec)


class Playbook(Surface):
    apiVersion: Literal["noetl.io/v2", "noetl.io/v1"]
    kind: Literal["Playbook"]
    metadata: Metadata
    workload: dict[str, Any] | None = None
    keychain: list[Any] | None = None
    executor: Executor | None = None
    workbook: list[WorkbookEntry] | None = None
    workflow: Annotated[list[Step], Field(min_length=1)]
