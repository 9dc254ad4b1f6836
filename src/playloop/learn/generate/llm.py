"""An LLM writes the draft: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

``PLAYLOOP_LLM_URL`` (the endpoint, or its base URL), ``PLAYLOOP_LLM_MODEL``, optional
``PLAYLOOP_LLM_KEY`` (sent as a bearer token) and ``PLAYLOOP_LLM_ATTEMPTS`` (default 3).
The system prompt carries a summary of the DSL and its JSON Schema (``playloop schema``);
the retrieved catalog playbooks are few-shot examples (their description as the user's
turn, their YAML as the assistant's); the steps that worked are listed with the request.
A reply that does not validate is sent back with the loader's errors, up to the attempts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from playloop.dsl.errors import PlaybookError
from playloop.learn.generate.draft import Draft, DraftRejected, check
from playloop.learn.generate.grounding import Grounding

__all__ = ["LlmConfig", "LlmError", "llm_config", "messages_for", "write_with_llm"]

DEFAULT_MODEL = "gpt-4o-mini"
FEW_SHOT = 3
TOP_STEPS = 8


class LlmError(RuntimeError):
    """The LLM endpoint could not be reached or gave an answer that is not a chat reply."""


@dataclass(frozen=True)
class LlmConfig:
    url: str | None
    model: str = DEFAULT_MODEL
    key: str | None = None
    attempts: int = 3
    timeout: float = 120.0

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @classmethod
    def off(cls) -> LlmConfig:
        return cls(url=None)

    @property
    def endpoint(self) -> str:
        url = (self.url or "").rstrip("/")
        if url.endswith("/chat/completions"):
            return url
        if url.endswith("/v1"):
            return url + "/chat/completions"
        return url + "/v1/chat/completions"


def llm_config(env: Mapping[str, str] | None = None) -> LlmConfig:
    """The LLM named by ``PLAYLOOP_LLM_*`` in ``env`` (default: the environment)."""
    env = os.environ if env is None else env
    attempts = env.get("PLAYLOOP_LLM_ATTEMPTS", "3")
    return LlmConfig(
        url=env.get("PLAYLOOP_LLM_URL") or None,
        model=env.get("PLAYLOOP_LLM_MODEL") or DEFAULT_MODEL,
        key=env.get("PLAYLOOP_LLM_KEY") or None,
        attempts=max(1, int(attempts)) if attempts.isdigit() else 3,
    )


DSL_SUMMARY = """\
You write playloop playbooks: NoETL YAML (apiVersion: noetl.io/v2, kind: Playbook).
Top level: metadata {name, path, description}, workload (inputs with defaults), workflow (steps).
A step: step (unique snake_case name), desc, tool {kind, ...}, next, loop, retry, timeout.
Tool kinds: python (code sets `result` or defines main(**input); `input` bindings become
variables), http (method, url, headers, params, json, timeout; result {status_code, headers,
data}; wait: callback pauses until {{ callback_url }} is called), sqlite/duckdb (database,
command, query, params; result {rows, columns, rowcount}), postgres (auth: a credential name,
command/query/params, or table + data), shell (cmds), playbook (path, workload: a child
execution), approval (prompt, options, approvers, timeout, on_timeout: a person decides;
`decision.action` afterwards), noop (result).
Routing, seed form: next: [{when: "{{ expr }}", then: [{step: x, args: {...}}]}, {else: [{step: y}]}];
a bare `- step: x` item is an unconditional arc. Steps without next end their branch.
Loops: loop: {in: "{{ workload.items }}", iterator: item, spec: {mode: parallel, max_in_flight: 4}}.
Retries: retry: {attempts: 3, delay: 1s, backoff: exponential, on: [ConnectionError, HTTPError.503]}.
Templates are Jinja2 with StrictUndefined: they may read workload, vars, args, execution_id,
playbook, a finished step's result by its name, the loop iterator, a tool's input names,
decision (after an approval), callback_url. Python code is not a template.
Reply with exactly one complete playbook in one ```yaml fenced block and nothing else."""


def _system() -> str:
    from playloop.dsl.schema import json_schema

    schema = json.dumps(json_schema(), separators=(",", ":"))
    return f"{DSL_SUMMARY}\n\nThe playbook JSON Schema:\n{schema}"


def messages_for(description: str, grounding: Grounding, name: str) -> list[dict[str, str]]:
    """The chat: system prompt, few-shot examples from the catalog, then the request."""
    messages = [{"role": "system", "content": _system()}]
    for example in grounding.examples[:FEW_SHOT]:
        ask = example.description or f"The playbook {example.path}."
        messages.append({"role": "user", "content": f"Write a playbook: {ask}"})
        messages.append(
            {"role": "assistant", "content": f"```yaml\n{example.content.strip()}\n```"}
        )
    lines = [f"Write a playbook: {description}", f"Name it {name}; path drafts/{name}."]
    worked = [(e, s) for e, s in grounding.ranked_steps() if s.finished > 0][:TOP_STEPS]
    if worked:
        lines.append("Steps of similar catalog playbooks that worked (reuse them when they fit):")
        for _example, record in worked:
            tool = record.body.get("tool") or {}
            lines.append(f"- {record.evidence()}: tool kind {tool.get('kind', 'noop')}")
    messages.append({"role": "user", "content": "\n".join(lines)})
    return messages


def write_with_llm(
    description: str, grounding: Grounding, config: LlmConfig, *, name: str
) -> Draft:
    """Ask the LLM, validate, send errors back; a ``Draft`` or ``DraftRejected``."""
    messages = messages_for(description, grounding, name)
    repairs: list[str] = []
    problems: list[str] = []
    text = ""
    with httpx.Client(timeout=config.timeout) as client:
        for attempt in range(1, config.attempts + 1):
            reply = _chat(client, config, messages)
            text = extract_yaml(reply)
            try:
                flow = check(text)
            except PlaybookError as exc:
                problems = [str(p) for p in exc.problems]
                repairs.append(f"attempt {attempt}: " + "; ".join(problems))
                messages.append({"role": "assistant", "content": reply})
                messages.append(
                    {
                        "role": "user",
                        "content": "That playbook is not valid:\n"
                        + "\n".join(problems)
                        + "\nReply with the whole corrected playbook in one ```yaml block.",
                    }
                )
                continue
            return Draft(
                description=description,
                text=text if text.endswith("\n") else text + "\n",
                flow=flow,
                source="llm",
                attempts=attempt,
                repairs=repairs,
                grounding=grounding.to_dict(),
                needs=_needs(flow),
            )
    raise DraftRejected(
        f"the LLM's draft is still not valid after {config.attempts} attempts", problems, text
    )


def _chat(client: httpx.Client, config: LlmConfig, messages: list[dict[str, str]]) -> str:
    headers = {"Authorization": f"Bearer {config.key}"} if config.key else {}
    body = {"model": config.model, "messages": messages, "temperature": 0}
    try:
        response = client.post(config.endpoint, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise LlmError(f"cannot reach the LLM at {config.endpoint}: {exc}") from None
    if response.status_code != 200:
        raise LlmError(
            f"the LLM at {config.endpoint} answered {response.status_code}: {response.text[:300]}"
        )
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LlmError(f"the LLM at {config.endpoint} gave no chat completion") from None
    if not isinstance(content, str) or not content.strip():
        raise LlmError(f"the LLM at {config.endpoint} gave an empty reply")
    return content


_FENCE = re.compile(r"```(?:ya?ml)?[ \t]*\n(.*?)```", re.S)


def extract_yaml(reply: str) -> str:
    """The YAML of a reply: its first fenced block, else the whole reply."""
    found = _FENCE.search(reply)
    return (found.group(1) if found else reply).strip() + "\n"


def _needs(flow: Any) -> list[str]:
    services = {"http": "http", "postgres": "postgres", "approval": "a person (approval)"}
    kinds = {s.tool.kind for s in flow.steps.values() if getattr(s, "tool", None)}
    return sorted(services[k] for k in kinds if k in services)
