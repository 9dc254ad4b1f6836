"""The error corpus (errors.yaml): families of real error messages, held-out queries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

CORPUS = Path(__file__).resolve().parent / "errors.yaml"


@dataclass(frozen=True, slots=True)
class Text:
    family: str
    text: str


@dataclass(frozen=True, slots=True)
class Family:
    id: str
    messages: tuple[str, ...]
    queries: tuple[str, ...]
    near: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Corpus:
    families: tuple[Family, ...]

    def messages(self) -> list[Text]:
        return [Text(f.id, m) for f in self.families for m in f.messages]

    def queries(self) -> list[Text]:
        return [Text(f.id, q) for f in self.families for q in f.queries]

    def all_texts(self) -> list[Text]:
        return self.messages() + self.queries()


def load_corpus(path: Path = CORPUS) -> Corpus:
    data = yaml.safe_load(path.read_text())
    return Corpus(
        tuple(
            Family(
                f["id"],
                tuple(f["messages"]),
                tuple(f.get("queries", ())),
                tuple(f.get("near", ())),
            )
            for f in data["families"]
        )
    )
