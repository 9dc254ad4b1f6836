"""A parsed playbook -> the engine's ``Flow``, with every check that needs more than a shape.

``dsl.model`` checks shapes and types; this module resolves ``workbook`` references,
checks each tool's config against its kind, every template (syntax, unknown names), step
references, the entry step and cycles that can never be left, and normalises both
routing forms into ``Routing``. Problems are collected, never raised one by one.

Routing semantics (``engine.decide`` implements them; this is the contract):

- ``exclusive``: arcs are read in order in *blocks* of consecutive arcs that share the
  same ``when`` and the same ``line``; the first block whose ``when`` is absent or true
  fires, all of its arcs. ``else`` arcs fire when no block fired.
- ``inclusive``: every arc whose ``when`` is absent or true fires; ``else`` arcs fire
  when none did.
- Seed form ``next: [...]``: one ``{when, then: [...]}`` item is one block, so its arcs
  all carry that ``when`` and the line of its ``when:`` key; ``{else: [...]}`` gives
  ``else`` arcs; a bare ``{step, args}`` or step name is an unconditional block of its
  own, at its position. A list of only bare targets (NoETL's ``next: [a, b]``) fans out:
  it becomes ``inclusive``. ``next: name`` is one unconditional arc.
- Canonical form ``next: {spec: {mode}, arcs: [...]}`` keeps its mode; each arc is its own
  block (its own line); ``{step, else: true}`` is an else arc.
- A step's own ``args:`` are defaults for the ``args`` it receives (``FlowStep.args``); the
  engine merges the ``args`` of the arcs that led to the step over them.
- ``timeout``/``pool``: the step's own key wins over its ``tool.spec``, which wins over the
  ``spec`` of the workbook tool it calls; ``policy`` likewise (as a whole).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cache, lru_cache
from typing import Annotated, Any, TypeVar

from jinja2 import TemplateError as JinjaTemplateError
from jinja2 import nodes
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from playloop.dsl import model
from playloop.dsl.errors import Reporter, SourceMap, did_you_mean
from playloop.dsl.flow import (
    AnomalyRoute,
    AnomalySpec,
    Arc,
    AutoTimeout,
    Flow,
    FlowStep,
    LoopSpec,
    PolicyRule,
    RetryPolicy,
    Routing,
    RoutingMode,
    ToolCall,
    graph_index,
)
from playloop.dsl.model import (
    UNKNOWN_KEYS,
    CanonicalNext,
    ElseBlock,
    Executor,
    Loop,
    Playbook,
    Retry,
    Step,
    Target,
    ToolSpec,
    UnknownKeys,
    WhenBlock,
    WorkbookEntry,
    allowed_keys,
)
from playloop.dsl.render import ENV, TemplateError, is_template
from playloop.tools import registry

__all__ = ["CONTEXT_NAMES", "ROUTE_NAMES", "normalize", "template_names"]

#: names every template may read (besides step names, loop iterators and ``input`` keys)
CONTEXT_NAMES = frozenset(
    {
        "workload",
        "vars",
        "args",
        "execution_id",
        "playbook",
        "iter",
        "loop",
        "output",
        "error",
        "outcome",
        "decision",
        "current_user",
        "now",
        "callback_url",
        "result",
    }
)
#: names a step's ``next`` templates may read besides those: ``anomaly`` (the strongest
#: anomaly detected for the step, or None)
ROUTE_NAMES = frozenset({"anomaly"})
_RESERVED = CONTEXT_NAMES | ROUTE_NAMES
_TOOL_KEYS = ("kind", "input", "spec")
#: ``retry: auto`` bounds when the playbook gives none: attempts (the first included),
#: the first delay of the default backoff, the longest delay (seconds)
AUTO_MAX_ATTEMPTS = 5
AUTO_FIRST_DELAY = 1.0
AUTO_MAX_DELAY = 30.0

_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}

Path = tuple[Any, ...]
M = TypeVar("M", bound=BaseModel)


def normalize(source: SourceMap, *, content_hash: str = "", source_file: str | None = None) -> Flow:
    """Validate the parsed document and build its ``Flow``; raise ``PlaybookError``."""
    report = Reporter(source)
    for mapping, key in source.duplicate_keys:
        report.add(
            (*(source.path_of(mapping) or ()), key), f"key '{key}' is given twice", at_key=True
        )
    data = source.root
    if not isinstance(data, dict):
        got = "empty" if data is None else f"{_KINDS.get(type(data), 'a value')}, not a mapping"
        report.add((), f"the playbook is {got}")
        raise report.error()

    unknown: list[UnknownKeys] = []
    context = {UNKNOWN_KEYS: unknown}
    try:
        doc: Playbook | None = Playbook.model_validate(data, context=context)
    except ValidationError as exc:
        report.add_validation_error(exc)
        doc = None
    if doc is not None:
        steps = list(enumerate(doc.workflow))
        entries = list(enumerate(doc.workbook or ()))
        executor = doc.executor
    else:  # keep checking what is well formed: one load reports every problem
        steps = _salvage(Step, data.get("workflow"), context)
        entries = _salvage(WorkbookEntry, data.get("workbook"), context)
        executor = _partial(Executor, data.get("executor"), context)
    for found in unknown:
        _report_unknown(source, report, found)

    builder = _Builder(source, report, steps, entries)
    flow_steps = builder.build()
    entry = builder.entry(executor)
    builder.check_cycles(flow_steps)
    report.raise_if_any()
    assert doc is not None  # a document that failed validation has problems reported
    predecessors, reaches = graph_index(flow_steps)
    meta = doc.metadata
    return Flow(
        name=meta.name,
        path=meta.path or meta.name,
        steps=flow_steps,
        entry=entry,
        version=meta.version,
        description=meta.description or "",
        workload=doc.workload or {},
        source_file=source_file,
        content_hash=content_hash,
        predecessors=predecessors,
        reaches=reaches,
    )


def _salvage(model: type[M], raw: Any, context: dict[str, Any]) -> list[tuple[int, M]]:
    """The items of a list that validate, each without its keys that do not."""
    if not isinstance(raw, list):
        return []
    return [(i, found) for i, item in enumerate(raw) if (found := _partial(model, item, context))]


def _partial(model: type[M], raw: Any, context: dict[str, Any]) -> M | None:
    """``raw`` validated without the keys that fail (their errors are reported already)."""
    if not isinstance(raw, dict):
        return None
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
    rest = {k: v for k, v in raw.items() if k in allowed_keys(model) and k not in bad}
    try:
        return model.model_validate(rest, context=context)
    except ValidationError:
        return None


def _report_unknown(source: SourceMap, report: Reporter, found: UnknownKeys) -> None:
    path = source.path_of(found.mapping) or ()
    for key in found.keys:
        report.add((*path, key), _unknown_key(key, found.allowed), at_key=True)


def _unknown_key(key: Any, allowed: Sequence[str], where: str = "") -> str:
    hint = did_you_mean(str(key), allowed)
    return f"unknown key '{key}'{where}" + (hint or f"; expected one of: {', '.join(allowed)}")


class _Builder:
    """Builds the ``FlowStep`` of every step, reporting what is wrong on the way."""

    def __init__(
        self,
        source: SourceMap,
        report: Reporter,
        steps: list[tuple[int, Step]],
        entries: list[tuple[int, WorkbookEntry]],
    ) -> None:
        self.source = source
        self.report = report
        self.steps = steps
        raw_steps = source.root.get("workflow")
        raw_steps = raw_steps if isinstance(raw_steps, list) else []
        #: every step name, even of steps that failed validation (for reference checks)
        self.names: dict[str, int] = {}
        for index, raw in enumerate(raw_steps):
            if isinstance(raw, dict) and isinstance(raw.get("step"), str):
                self.names.setdefault(raw["step"], index)
        self.workbook: dict[str, tuple[int, WorkbookEntry]] = {}
        for index, entry in entries:
            if entry.name in self.workbook:
                self.report.add(
                    ("workbook", index, "name"), f"workbook tool '{entry.name}' is defined twice"
                )
            else:
                self.workbook[entry.name] = (index, entry)
        iterators = {step.loop.iterator for _, step in steps if step.loop}
        inputs = {k for _, s in steps if s.tool for k in s.tool.input}
        self.names_everywhere = CONTEXT_NAMES | frozenset(self.names) | iterators | inputs

    # --- steps ---------------------------------------------------------------------------

    def build(self) -> dict[str, FlowStep]:
        for index, entry in self.workbook.values():
            self._check_workbook_entry(index, entry)
        built: dict[str, FlowStep] = {}
        for index, step in self.steps:
            at: Path = ("workflow", index)
            if step.step in built or self.names.get(step.step, index) != index:
                first = self._line(("workflow", self.names[step.step]))
                self.report.add(
                    (*at, "step"), f"duplicate step name '{step.step}' (first at line {first})"
                )
                continue
            if step.step in _RESERVED:
                self.report.add((*at, "step"), f"step name '{step.step}' is reserved for templates")
            built[step.step] = self._step(at, step)
        return built

    def _step(self, at: Path, step: Step) -> FlowStep:
        tool, specs, input_names = self._tool(at, step)
        self._check_step_templates(at, step, input_names)
        timeout = step.timeout if step.timeout is not None else _first(specs, "timeout")
        auto_timeout = None
        if isinstance(timeout, model.AutoTimeout):
            auto_timeout = AutoTimeout(min=timeout.min, max=timeout.max)
            timeout = None
        return FlowStep(
            name=step.step,
            tool=tool,
            args=dict(step.args or {}),
            next=self._routing((*at, "next"), step),
            loop=_loop(step.loop) if step.loop else None,
            retry=_retry(step.retry) if step.retry else None,
            rules=self._rules(specs),
            timeout=timeout,
            description=step.description or step.desc or "",
            pool=step.pool if step.pool is not None else _first(specs, "pool"),
            line=self._line(at),
            anomaly=_anomaly(step),
            on_anomaly=self._on_anomaly(at, step, tool.kind),
            timeout_auto=auto_timeout,
        )

    def _on_anomaly(self, at: Path, step: Step, kind: str) -> AnomalyRoute | None:
        """``on_anomaly``: its target exists, and anomalies can be detected for the step."""
        route = step.on_anomaly
        if route is None:
            return None
        here: Path = (*at, "on_anomaly")
        self._check_step_ref(route.step, (*here, "step"))
        why = None
        if step.loop is not None:
            why = "a loop step is not judged for anomalies (its items are)"
        elif kind == "approval":
            why = "an approval step is not judged for anomalies (a person decides it)"
        elif step.anomaly is not None and not step.anomaly.enabled:
            why = "anomaly detection is off for this step (anomaly.enabled: false)"
        if why:
            self.report.add(here, f"on_anomaly can never fire: {why}", at_key=True)
        return AnomalyRoute(route.step, tuple(route.kinds or ()), self._line(here))

    def _tool(
        self, at: Path, step: Step
    ) -> tuple[ToolCall, list[tuple[ToolSpec, Path]], frozenset[str]]:
        """The tool to run, its ``spec`` blocks by precedence, and the names ``input`` binds."""
        tool = step.tool
        if tool is None:
            return ToolCall("noop"), [], frozenset()
        here: Path = (*at, "tool")
        specs = [(tool.spec, (*here, "spec"))] if tool.spec else []
        self._check_config(tool.kind, tool.config, here)
        if tool.kind != "workbook":
            return ToolCall(tool.kind, tool.config, tool.input), specs, frozenset(tool.input)
        name = tool.config.get("name")
        found = self.workbook.get(name) if isinstance(name, str) else None
        if found is None:
            if isinstance(name, str):
                hint = did_you_mean(name, self.workbook)
                self.report.add((*here, "name"), f"unknown workbook tool '{name}'{hint}")
            return ToolCall(tool.kind, tool.config, tool.input), specs, frozenset(tool.input)
        index, entry = found
        if entry.tool.spec:
            specs.append((entry.tool.spec, ("workbook", index, "tool", "spec")))
        merged = {**entry.tool.input, **tool.input}
        return ToolCall(entry.tool.kind, entry.tool.config, merged), specs, frozenset(merged)

    def _check_workbook_entry(self, index: int, entry: WorkbookEntry) -> None:
        at: Path = ("workbook", index)
        if entry.tool.kind == "workbook":
            self.report.add(
                (*at, "tool", "kind"), "a workbook tool cannot call another workbook tool"
            )
        else:
            self._check_config(entry.tool.kind, entry.tool.config, (*at, "tool"))
        skip = {(*at, "name"), (*at, "description")}
        skip |= {(*at, "tool", f) for f in _raw_fields(entry.tool.kind)}
        allowed = self.names_everywhere | frozenset(entry.tool.input)
        self._check_templates(at, allowed, skip=frozenset(skip))

    def _check_config(self, kind: str, config: Mapping[str, Any], here: Path) -> None:
        """Unknown keys, missing required keys and literal values of the wrong type."""
        try:
            cls = registry.tool_class(kind)
        except registry.UnknownToolKind as exc:
            self.report.add((*here, "kind"), str(exc))
            return
        fields = _config_fields(kind)
        for key, value in config.items():
            if key not in fields:
                message = _unknown_key(key, [*fields, *_TOOL_KEYS], f" for tool kind '{kind}'")
                self.report.add((*here, key), message, at_key=True)
            elif not _has_template(value):
                try:
                    _adapter(kind, fields[key]).validate_python(value)
                except ValidationError as exc:
                    self.report.add_validation_error(exc, (*here, key))
        for name, info in cls.Config.model_fields.items():
            key = info.alias or name
            if info.is_required() and key not in config and name not in config:
                self.report.add_missing((*here, key), f"is required by tool kind '{kind}'")

    def _check_step_templates(self, at: Path, step: Step, input_names: frozenset[str]) -> None:
        """Every template of a step; ``input`` keys and the loop iterator exist in its tool only.

        ``next`` and ``loop.in`` are rendered outside the iterations, and ``args`` defaults
        where the arc that leads here fires.
        """
        allowed = CONTEXT_NAMES | frozenset(self.names)
        skip = {(*at, "step"), (*at, "desc"), (*at, "description"), (*at, "tool"), (*at, "next")}
        self._check_templates(at, allowed, skip=frozenset(skip))
        if step.next is not None:
            self._check_templates((*at, "next"), allowed | ROUTE_NAMES, skip=frozenset())
        if step.tool is not None:
            allowed |= input_names | ({step.loop.iterator} if step.loop else set())
            raw = frozenset((*at, "tool", f) for f in _raw_fields(step.tool.kind))
            self._check_templates((*at, "tool"), allowed, skip=raw)

    # --- templates -----------------------------------------------------------------------

    def _check_templates(self, at: Path, allowed: frozenset[str], *, skip: frozenset[Path]) -> None:
        for path, source in _template_strings(self.source.root, at, skip):
            try:
                names = template_names(source)
            except TemplateError as exc:
                self.report.add(path, f"template syntax error: {exc.reason}")
                continue
            for name in sorted(names - allowed):
                hint = did_you_mean(name, allowed)
                self.report.add(path, f"template refers to unknown name '{name}'{hint}")

    # --- routing -------------------------------------------------------------------------

    def _routing(self, at: Path, step: Step) -> Routing:
        nxt = step.next
        if nxt is None:
            return Routing()
        if isinstance(nxt, str):
            return Routing("exclusive", (self._arc(nxt, at, line=self._line(at)),))
        if isinstance(nxt, CanonicalNext):
            arcs = []
            for k, item in enumerate(nxt.arcs):
                path = (*at, "arcs", k)
                arcs.append(
                    self._arc(
                        item.step,
                        (*path, "step"),
                        when=item.when,
                        args=item.args,
                        set=item.set,
                        is_else=item.else_,
                        line=self._line(path),
                    )
                )
            return Routing(nxt.spec.mode, tuple(arcs))
        seed: list[Arc] = []
        for i, entry in enumerate(nxt):
            path = (*at, i)
            if isinstance(entry, WhenBlock):
                line = self._line((*path, "when"), key=True)
                for j, target in enumerate(entry.then):
                    seed.append(
                        self._target(target, (*path, "then", j), when=entry.when, line=line)
                    )
            elif isinstance(entry, ElseBlock):
                line = self._line((*path, "else"), key=True)
                for j, target in enumerate(entry.else_):
                    seed.append(self._target(target, (*path, "else", j), is_else=True, line=line))
            else:
                seed.append(self._target(entry, path, line=self._line(path)))
        fan_out = len(nxt) > 1 and all(isinstance(e, str | Target) for e in nxt)
        mode: RoutingMode = "inclusive" if fan_out else "exclusive"
        return Routing(mode, tuple(seed))

    def _target(self, target: str | Target, path: Path, **arc: Any) -> Arc:
        if isinstance(target, str):
            return self._arc(target, path, **arc)
        return self._arc(target.step, (*path, "step"), args=target.args, **arc)

    def _arc(
        self, step: str, path: Path, *, args: Mapping[str, Any] | None = None, **arc: Any
    ) -> Arc:
        self._check_step_ref(step, path)
        return Arc(step=step, args=dict(args or {}), **arc)

    def _check_step_ref(self, name: str, path: Path) -> None:
        if name not in self.names:
            self.report.add(path, f"unknown step '{name}'{did_you_mean(name, self.names)}")

    def _rules(self, specs: list[tuple[ToolSpec, Path]]) -> tuple[PolicyRule, ...]:
        for spec, at in specs:
            if spec.policy is None:
                continue
            rules = []
            for j, rule in enumerate(spec.policy.rules):
                path = (*at, "policy", "rules", j)
                then = rule.then
                if then.to is not None:
                    self._check_step_ref(then.to, (*path, "then", "to"))
                rules.append(
                    PolicyRule(
                        do=then.do,
                        when=rule.when,
                        attempts=then.attempts,
                        delay=then.delay,
                        backoff=then.backoff,
                        max_delay=then.max_delay,
                        jitter=then.jitter,
                        to=then.to,
                        line=self._line(path),
                        mode=then.mode,
                    )
                )
            return tuple(rules)
        return ()

    # --- the whole graph -----------------------------------------------------------------

    def entry(self, executor: Executor | None) -> str:
        """``executor.spec.entry_step``, else the step named ``start``, else the first step."""
        chosen = executor.spec.entry_step if executor else None
        if chosen is not None:
            if chosen not in self.names:
                path = ("executor", "spec", "entry_step")
                self.report.add(path, f"unknown step '{chosen}'{did_you_mean(chosen, self.names)}")
            return chosen
        return "start" if "start" in self.names else next(iter(self.names), "")

    def check_cycles(self, steps: Mapping[str, FlowStep]) -> None:
        """A cycle every arc of which is unconditional and stays inside runs forever."""
        succ = {
            name: [a.step for a in step.next.arcs if a.step in steps]
            for name, step in steps.items()
        }
        for component in _strongly_connected(succ):
            members = set(component)
            if len(component) == 1 and component[0] not in succ[component[0]]:
                continue
            trapped = all(
                arc.when is None and not arc.is_else and arc.step in members
                for name in component
                for arc in steps[name].next.arcs
            )
            if trapped:
                ordered = sorted(component, key=lambda n: self.names[n])
                listed = ", ".join(f"'{n}'" for n in ordered)
                what = (
                    f"step {listed} routes to itself"
                    if len(ordered) == 1
                    else f"steps {listed} route to each other"
                )
                self.report.add(
                    ("workflow", self.names[ordered[0]], "next"),
                    f"cycle without exit: {what} unconditionally",
                )

    def _line(self, path: Path, *, key: bool = False) -> int:
        located = self.source.locate(path)
        return (located.key if key else located.value)[0]


def _loop(loop: Loop) -> LoopSpec:
    options = loop.spec
    return LoopSpec(loop.items, loop.iterator, options.mode, options.max_in_flight)


def _anomaly(step: Step) -> AnomalySpec:
    options = step.anomaly
    if options is None:
        return AnomalySpec()
    return AnomalySpec(
        enabled=options.enabled,
        threshold=options.threshold,
        min_samples=options.min_samples,
        fields=tuple(options.fields) if options.fields is not None else None,
    )


def _retry(retry: Retry) -> RetryPolicy:
    if retry.auto:
        given = retry.model_fields_set
        return RetryPolicy(
            attempts=retry.max_attempts or AUTO_MAX_ATTEMPTS,
            delay=retry.delay if "delay" in given else AUTO_FIRST_DELAY,
            backoff="exponential",
            max_delay=retry.max_delay if retry.max_delay is not None else AUTO_MAX_DELAY,
            auto=True,
        )
    assert retry.attempts is not None  # the model requires it without auto
    return RetryPolicy(
        attempts=retry.attempts,
        delay=retry.delay,
        backoff=retry.backoff,
        max_delay=retry.max_delay,
        jitter=retry.jitter,
        on=tuple(retry.on),
    )


def _first(specs: list[tuple[ToolSpec, Path]], attr: str) -> Any:
    return next((v for spec, _ in specs if (v := getattr(spec, attr)) is not None), None)


def _template_strings(root: Any, at: Path, skip: frozenset[Path]) -> Iterator[tuple[Path, str]]:
    """Every template string under the node at ``at``, with its path."""
    node = root
    for part in at:
        node = node[part]
    stack: list[tuple[Any, Path]] = [(node, at)]
    while stack:
        value, path = stack.pop()
        if path in skip:
            continue
        if isinstance(value, str):
            if is_template(value):
                yield path, value
        elif isinstance(value, dict):
            stack.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


@lru_cache(maxsize=8192)
def template_names(source: str) -> frozenset[str]:
    """Top-level names a template reads, from its syntax tree alone (cached).

    ``render.referenced_names`` at a third of the cost: ``meta.find_undeclared_variables``
    runs Jinja's code generator, and a playbook of 200 steps has hundreds of templates. The
    names read, minus those the template assigns (``for`` targets, ``set``, macro
    parameters) and the environment's globals (``now``, ``range``); ``loop`` inside a
    ``for`` block counts as read. A syntax error raises ``render.TemplateError``.
    """
    try:
        tree = ENV.parse(source)
    except JinjaTemplateError as exc:
        raise TemplateError(str(exc), source) from None
    read: set[str] = set()
    assigned: set[str] = set()
    for node in tree.find_all(nodes.Name):
        (read if node.ctx == "load" else assigned).add(node.name)
    return frozenset(read - assigned - ENV.globals.keys())


def _raw_fields(kind: str) -> frozenset[str]:
    try:
        return registry.tool_class(kind).raw_fields
    except registry.UnknownToolKind:
        return frozenset()


@cache
def _config_fields(kind: str) -> dict[str, str]:
    """Keys a tool kind's config accepts (aliases where set) -> field names."""
    model = registry.tool_class(kind).Config
    fields = {info.alias or name: name for name, info in model.model_fields.items()}
    if model.model_config.get("populate_by_name"):
        fields.update({name: name for name in model.model_fields})
    return fields


@cache
def _adapter(kind: str, name: str) -> TypeAdapter[Any]:
    info: FieldInfo = registry.tool_class(kind).Config.model_fields[name]
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[(annotation, *info.metadata)]
    return TypeAdapter(annotation)


def _strongly_connected(succ: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a long chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in succ:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = succ[node]
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components
