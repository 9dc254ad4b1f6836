"""What a plain-language description asks for: an ordered list of intents.

No model, no grammar: each intent kind has a few verb patterns; a match's position orders
the steps as the description orders them, and the words after the verb name the step
(``extract orders from ...`` -> ``extract_orders``). Phrases that are not steps
(``every night``, ``for each file``, ``below 0.9``) become attributes of the whole draft
or of the nearest step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Intent", "Parsed", "parse"]

#: intent kind -> verb pattern (matched on lower-case text, word-bounded)
_VERBS: dict[str, str] = {
    "fetch": r"fetch|call|poll|download|scrape|pull|get|request|hit|query the api|read the api",
    "query": r"extract|query|select|read|look up|lookup|export",
    "load": r"load|insert|store|write|save|persist|upsert|append|ingest|record",
    "validate": r"validate|check|verify|assert|profile|measure the quality|score the quality",
    "transform": (
        r"transform|clean|cleanse|normali[sz]e|parse|enrich|aggregate|summari[sz]e|dedupe|"
        r"deduplicate|join|compute|count|convert|filter|reshape|resize|compress|rank|sort|"
        r"calculate|merge|split|tokeni[sz]e|analy[sz]e|classify|hash|score|compare|collect"
    ),
    "train": r"retrain|train|fit|re-train",
    "evaluate": r"evaluate|test the model|benchmark|score the model",
    "approve": (
        r"approv\w*|review\w*|sign[- ]off|ask (?:a|an|the) (?:\w+ )?\w+ to|human|steward|"
        r"manual(?:ly)? check|needs? a person|wait for a decision|confirm"
    ),
    "notify": r"notify|alert|send|post|page|email|message|publish|announce|report to",
    "deploy": r"deploy|release|promote|roll out",
    "child": r"run the [\w-]+ playbook|child playbook|sub-?playbook|reuse the [\w-]+ playbook",
    "shell": r"run (?:the |a )?(?:\w+ ){0,2}(?:shell|bash) (?:script|command)|shell|bash|execute the script",
    "report": r"report|print|log|tell",
}
_SQL_DIALECTS = {
    "postgres": r"postgres(?:ql)?|pg\b|warehouse",
    "duckdb": r"duck ?db|parquet|analytics db",
    "sqlite": r"sqlite|\.db\b|local database",
}
_SCHEDULES = [
    (r"every (\d+) minutes?", "*/{0} * * * *"),
    (r"every (\d+) hours?", "0 */{0} * * *"),
    (r"every minute", "* * * * *"),
    (r"every hour|(?:^|, )hourly\b|\bhourly(?:[,.]|$)", "0 * * * *"),
    (r"nightly|every night|at night|at midnight", "0 2 * * *"),
    (r"every day|each day|every morning|once a day|(?:^|, )daily\b|\bdaily(?:[,.]|$)", "0 6 * * *"),
    (
        r"every week|each week|every (?:monday|sunday)|\bweekly(?:[,.]|$)|(?:^|, )weekly",
        "0 3 * * 1",
    ),
    (r"every month|\bmonthly(?:[,.]|$)|(?:^|, )monthly", "0 3 1 * *"),
]
#: "verb each X": a loop on that verb's step when it is the first step (items from the workload)
_EACH = re.compile(
    r"\b(?:each|every) (?:uploaded |incoming |new |listed )?"
    r"(?!(?:night|day|morning|hour|week|month|minute|time|run)s?\b|\d)([a-z][a-z_]+)"
)
#: a word before a verb that makes it a noun ("the email", "a shell", "each reading")
_NOUN_BEFORE = re.compile(r"\b(?:the|a|an|each|every|its|their|our|your|of|with)\s+$")
_LOOP = re.compile(
    r"\b(?:for (?:each|every)|each of the|over (?:all|each|every|the)|fan(?:-| )out over)"
    r" (?:incoming |new |uploaded |listed )?([a-z][a-z_]+)"
)
_THRESHOLD = re.compile(
    r"(?:below|under|less than|lower than|above|over|more than|threshold(?: of)?|<|>)\s*"
    r"(\d+(?:\.\d+)?)\s*(%)?"
)
_URL = re.compile(r"https?://[^\s,;)\"']+")
_ON_FAILURE = re.compile(
    r"\b(?:(?:when|if) (?:it|anything|something|the \w+|that) fails|on failure|on error)\b"
)
_CALLBACK = re.compile(
    r"callback|call ?back|wait(?:s|ing)? for (?:the |an? )?(?:ack|acknowledg|reply|answer|response|confirmation)"
)
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "all",
        "our",
        "its",
        "their",
        "each",
        "every",
        "some",
        "any",
        "new",
        "latest",
        "of",
        "to",
        "from",
        "into",
        "in",
        "on",
        "for",
        "with",
        "and",
        "or",
        "then",
        "them",
        "it",
        "this",
        "that",
        "these",
        "those",
        "data",
        "when",
        "if",
        "is",
        "are",
        "be",
    ]
)
_OBJECT = re.compile(r"\s+((?:[a-z][a-z0-9_'-]*\s+){0,3}[a-z][a-z0-9_'-]*)")
_BREAK = frozenset(
    [
        "of",
        "to",
        "from",
        "into",
        "in",
        "on",
        "for",
        "with",
        "and",
        "or",
        "then",
        "as",
        "by",
        "at",
        "before",
        "after",
        "until",
        "via",
        "using",
        "per",
        "if",
        "when",
        "while",
        "so",
        "that",
        "which",
        "who",
        "below",
        "under",
        "above",
        "over",
        "than",
        "is",
        "are",
        "was",
    ]
)
_PRONOUNS = frozenset(["it", "them", "its", "their", "this", "that", "these", "those"])
#: verbs that are also common nouns: actions only at the start of a clause
_NOUNISH = (
    r"(?:score|record|report|log|email|post|message|page|count|sort|rank|hash|merge|split|"
    r"join|test|check|alert|store|export|filter|load|query|request|release)(?:s|es|ing)?"
)
_CLAUSE_START = re.compile(
    r"(?:^|[,;.:]\s*|\b(?:and|then|to|please|also|first|finally|before|after|it|we|must|"
    r"should)\s+)$"
)


@dataclass
class Intent:
    """One step the description asks for."""

    kind: str
    verb: str
    obj: str | None
    at: int
    dialect: str | None = None
    loop_over: str | None = None
    callback: bool = False


@dataclass
class Parsed:
    description: str
    intents: list[Intent]
    schedule: str | None = None
    schedule_phrase: str | None = None
    threshold: float | None = None
    url: str | None = None
    on_failure: bool = False
    loops: list[str] = field(default_factory=list)


def parse(description: str) -> Parsed:
    """The intents of ``description`` in the order it names them."""
    text = " ".join(description.lower().split())
    url_match = _URL.search(description)
    parsed = Parsed(description=description, intents=_intents(text))
    parsed.url = url_match.group(0).rstrip(".") if url_match else None
    for pattern, cron in _SCHEDULES:
        found = re.search(pattern, text)
        if found:
            parsed.schedule = cron.format(*found.groups())
            parsed.schedule_phrase = found.group(0)
            break
    threshold = _THRESHOLD.search(text)
    if threshold:
        value = float(threshold.group(1))
        parsed.threshold = value / 100 if threshold.group(2) or value > 1 else value
    parsed.on_failure = bool(_ON_FAILURE.search(text))
    callback = bool(_CALLBACK.search(text))
    for found in _LOOP.finditer(text):
        noun = _plural(found.group(1))
        parsed.loops.append(noun)
        target = _loop_target(parsed.intents, found.start())
        if target is not None and target.loop_over is None:
            target.loop_over = noun
            target.obj = target.obj or _singular(noun)
    for found in _EACH.finditer(text):
        if parsed.loops or text[max(0, found.start() - 4) : found.start()] == "for ":
            continue
        before = [i for i in parsed.intents if i.at < found.start()]
        if len(before) == 1 and before[0] is parsed.intents[0] and before[0].kind != "approve":
            noun = _plural(found.group(1))
            parsed.loops.append(noun)
            before[0].loop_over = noun
            before[0].obj = before[0].obj or _singular(noun)
    if callback:
        notifiers = [i for i in parsed.intents if i.kind in ("notify", "fetch", "deploy")]
        if notifiers:
            notifiers[0].callback = True
        else:
            parsed.intents.append(Intent("notify", "notify", None, len(text), callback=True))
    return parsed


def _intents(text: str) -> list[Intent]:
    found: list[Intent] = []
    taken: list[tuple[int, int]] = []
    for kind, verbs in _VERBS.items():
        for match in re.finditer(rf"\b(?:{verbs})(?:s|es|ing)?\b", text):
            start, end = match.span()
            if any(a <= start < b or a < end <= b for a, b in taken):
                continue
            if _NOUN_BEFORE.search(text[:start]) and kind not in ("approve", "child", "shell"):
                continue  # "the email", "a shell", "each reading": a noun, not an action
            if re.fullmatch(_NOUNISH, match.group(0)) and not _CLAUSE_START.search(text[:start]):
                continue  # "the quality score is": a noun mid-clause
            if kind == "report" and found and start < max(i.at for i in found):
                continue  # "report" mid-sentence is usually an object, not a final step
            taken.append((start, end))
            rest = text[end:]
            found.append(
                Intent(
                    kind=_refine(kind, match.group(0), rest),
                    verb=_stem(match.group(0).split()[0]),
                    obj=_named(kind, match.group(0)) or _object(rest),
                    at=start,
                    dialect=_dialect(text, start),
                )
            )
    found.sort(key=lambda i: i.at)
    merged = _merge(found)
    for before, intent in zip([None, *merged], merged, strict=False):
        if intent.obj is None and before is not None:
            intent.obj = before.obj
    return merged


def _named(kind: str, phrase: str) -> str | None:
    """``run the greet playbook`` -> greet; ``run the nightly backup shell script`` -> backup."""
    if kind == "child":
        named = re.search(r"the ([\w-]+) playbook", phrase)
        return named.group(1).replace("-", "_") if named else None
    if kind == "shell":
        words = [w for w in phrase.split()[1:-2] if w not in _STOP and w not in _WEAK]
        return words[-1] if words else None
    return None


def _stem(verb: str) -> str:
    for verbs in _VERBS.values():
        for suffix in ("ing", "es", "s"):
            base = verb[: -len(suffix)]
            if verb.endswith(suffix) and re.fullmatch(rf"(?:{verbs})", base):
                return base
    return verb


def _refine(kind: str, verb: str, rest: str) -> str:
    """``fetch`` from a database is a query; ``load`` from an API is a fetch; and so on."""
    window = rest[:60]
    if kind == "fetch" and re.search(r"\b(?:database|table|sqlite|postgres|duckdb|sql)\b", window):
        return "query"
    if kind == "query" and re.search(r"\b(?:api|endpoint|url|http|service|feed)\b", window):
        return "fetch"
    if kind == "load" and re.search(
        r"^\s*(?:\w+\s+){0,3}from\s+(?:the\s+)?(?:\w+\s+)?(?:api|endpoint|url|http)", window
    ):
        return "fetch"
    if (
        kind == "notify"
        and verb == "send"
        and re.search(r"\b(?:request|data|rows|payload)\b", window[:25])
    ):
        return "fetch"
    if kind == "notify" and re.search(
        r"\bto (?:a |an |the )?(?:manual |human )?(?:review|approv)", window
    ):
        return "route"  # "send low scores to a review": routing, not a message
    return kind


def _object(rest: str) -> str | None:
    """The noun phrase after a verb, up to a preposition: its last two content words."""
    match = _OBJECT.match(rest)
    if not match:
        return None
    words: list[str] = []
    for word in re.split(r"[\s-]+", match.group(1)):
        if word in _BREAK or word in _PRONOUNS:
            break
        word = re.sub(r"'s$", "", word)
        if word in _STOP or word in _WEAK or any(re.fullmatch(v, word) for v in _VERBS.values()):
            continue
        words.append(re.sub(r"[^a-z0-9_]", "", word))
    words = [w for w in words if w]
    return "_".join(words[-2:]) or None


_WEAK = frozenset(
    [
        "api",
        "endpoint",
        "url",
        "http",
        "service",
        "database",
        "table",
        "sqlite",
        "postgres",
        "postgresql",
        "duckdb",
        "sql",
        "results",
        "result",
        "step",
        "playbook",
        "it",
        "them",
        "everything",
        "records",
        "each",
        "every",
        "python",
        "code",
        "script",
        "today",
        "yesterday",
        "nightly",
        "daily",
        "weekly",
        "hourly",
        "new",
    ]
)


def _dialect(text: str, at: int) -> str | None:
    """The SQL dialect named nearest after (else before) position ``at``."""
    best: tuple[int, str] | None = None
    for dialect, pattern in _SQL_DIALECTS.items():
        for match in re.finditer(rf"\b(?:{pattern})", text):
            distance = match.start() - at if match.start() >= at else (at - match.start()) * 2
            if best is None or distance < best[0]:
                best = (distance, dialect)
    return best[1] if best else None


def _merge(intents: list[Intent]) -> list[Intent]:
    """Drop intents that repeat the one before them (``validate and check`` is one step);
    ``compress them with a shell command`` is one shell step."""
    out: list[Intent] = []
    for intent in intents:
        if intent.kind == "route":
            continue
        if (
            out
            and intent.at - out[-1].at < 40
            and intent.kind == "shell"
            and out[-1].kind == "transform"
        ):
            out[-1].kind = "shell"
            continue
        if out and out[-1].kind == intent.kind and intent.at - out[-1].at < 25:
            out[-1].obj = out[-1].obj or intent.obj
            continue
        out.append(intent)
    return out


def _loop_target(intents: list[Intent], at: int) -> Intent | None:
    """The step a ``for each X`` phrase applies to: the first action after it, else the
    last one before it."""
    after = [i for i in intents if i.at > at and i.kind not in ("approve", "report")]
    if after:
        return after[0]
    before = [i for i in intents if i.at < at and i.kind not in ("approve", "report")]
    return before[-1] if before else None


def _singular(noun: str) -> str:
    if noun.endswith("ies"):
        return noun[:-3] + "y"
    return noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun


def _plural(noun: str) -> str:
    if noun.endswith("s"):
        return noun
    if noun.endswith("y") and not noun.endswith(("ay", "ey", "oy", "uy")):
        return noun[:-1] + "ies"
    return noun + "s"
