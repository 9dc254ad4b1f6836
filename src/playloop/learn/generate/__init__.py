"""Draft a playbook from a plain-language description (``playloop generate``).

``generate(description, store=..., retriever=...)`` grounds the draft in similar catalog
playbooks and the steps of theirs that worked (from the event log), writes it with an LLM
when ``PLAYLOOP_LLM_URL`` names an OpenAI-compatible chat endpoint or with the deterministic
composer otherwise, and validates it with the DSL loader: a draft that does not validate
is repaired (the composer fixes the named field; the LLM gets the errors back) or rejected
with ``DraftRejected``. A draft is only returned: nothing here registers or runs it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from playloop.dsl.errors import PlaybookError
from playloop.learn.generate.compose import compose
from playloop.learn.generate.draft import Draft, DraftRejected, check, to_yaml
from playloop.learn.generate.grounding import Grounding, LexicalRetriever, Retriever, ground
from playloop.learn.generate.intents import parse
from playloop.learn.generate.llm import LlmConfig, LlmError, llm_config, write_with_llm
from playloop.learn.generate.repair import repair
from playloop.store.base import EventStore

__all__ = [
    "MAX_DESCRIPTION",
    "Draft",
    "DraftRejected",
    "LexicalRetriever",
    "LlmConfig",
    "LlmError",
    "Retriever",
    "compose_draft",
    "draft_name",
    "generate",
    "llm_config",
]

MAX_DESCRIPTION = 2000
REPAIR_ROUNDS = 3


def generate(
    description: str,
    *,
    store: EventStore | None = None,
    retriever: Retriever | None = None,
    llm: LlmConfig | None = None,
    k: int = 5,
    env: Mapping[str, str] | None = None,
) -> Draft:
    """A validated draft for ``description``. ``llm``: an LLM to write it (default: from
    ``PLAYLOOP_LLM_URL`` in ``env``/the environment; ``LlmConfig.off()`` for none).
    Raises ``DraftRejected`` or ``LlmError``."""
    began = time.perf_counter()
    text = description.strip()
    if not text:
        raise ValueError("the description is empty")
    if len(text) > MAX_DESCRIPTION:
        raise ValueError(f"the description is longer than {MAX_DESCRIPTION} characters")
    if retriever is None and store is not None:
        retriever = LexicalRetriever(store)
    grounding = ground(store, text, retriever, k=k)
    config = llm if llm is not None else llm_config(env)
    if config.enabled:
        draft = write_with_llm(text, grounding, config, name=draft_name(text))
    else:
        draft = compose_draft(text, grounding)
    draft.elapsed_ms = (time.perf_counter() - began) * 1000
    return draft


def draft_name(description: str) -> str:
    """A snake_case name from the description's first meaningful words."""
    words = [
        w
        for w in re.findall(r"[a-z0-9]+", description.lower())
        if w not in _FILLER and not w.isdigit()
    ]
    name = "_".join(words[:4])[:48].strip("_") or "draft"
    return name if not name[0].isdigit() else "d_" + name


_FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "then",
        "to",
        "of",
        "from",
        "in",
        "into",
        "on",
        "for",
        "with",
        "it",
        "its",
        "them",
        "each",
        "every",
        "that",
        "this",
        "when",
        "if",
        "is",
        "are",
        "be",
        "by",
        "at",
        "as",
        "all",
        "our",
        "we",
        "i",
        "please",
    ]
)


def compose_draft(description: str, grounding: Grounding) -> Draft:
    """The composer's draft, repaired field by field until the loader accepts it."""
    parsed = parse(description)
    composition = compose(parsed, grounding, name=draft_name(description))
    printable = "".join(c if c.isprintable() else " " for c in description)
    header = [
        "Drafted by `playloop generate` (composer, no LLM) from:",
        *_wrap(printable),
        "Review it, then: playloop validate FILE && playloop run FILE",
    ]
    repairs: list[str] = []
    for attempt in range(1, REPAIR_ROUNDS + 2):
        text = to_yaml(composition.document, header)
        try:
            flow = check(text)
        except PlaybookError as exc:
            fixed = repair(composition.document, exc.problems, composition.fallbacks)
            if fixed is None or attempt > REPAIR_ROUNDS:
                raise DraftRejected(
                    "the composed draft is not a valid playbook",
                    [str(p) for p in exc.problems],
                    text,
                ) from None
            repairs.extend(fixed)
            continue
        return Draft(
            description=description,
            text=text,
            flow=flow,
            source="composer",
            attempts=attempt,
            repairs=repairs,
            grounding=grounding.to_dict(),
            borrowed=composition.borrowed,
            needs=sorted(composition.needs),
            notes=composition.notes,
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _wrap(text: str, width: int = 90) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append("  " + line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append("  " + line)
    return lines
