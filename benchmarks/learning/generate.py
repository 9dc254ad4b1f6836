"""``playloop generate`` on the 20 descriptions: validation rate, time per draft, runs.

    python -m benchmarks.learning.generate [--rounds 2] [--no-run] [--lexical]

A temporary home gets every example in its catalog (five of them run once, so their steps
have a record in the event log), the catalog is indexed into the vector index, then each
description is drafted (composer, no LLM) ``--rounds`` times; the offline drafts are run on
the engine once. Times are per draft, the first round (cold: the embedder loads) and the
best later round, with their ratio (compare ratios, not absolute times, across machines).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml

from playloop.dsl.load import load_text
from playloop.learn.generate import DraftRejected, LexicalRetriever, LlmConfig, generate
from playloop.learn.generate.retrieval import open_retriever
from playloop.runtime import Engine

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTIONS = ROOT / "benchmarks" / "learning" / "generate_descriptions.yaml"
HISTORY = [
    "hello.yaml",
    "quality_gate.yaml",
    "sqlite_report.yaml",
    "loop.yaml",
    "child_playbook.yaml",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-run", action="store_true", help="Do not run the offline drafts.")
    parser.add_argument("--lexical", action="store_true", help="Word overlap, no vector index.")
    args = parser.parse_args()
    cases: list[dict[str, Any]] = yaml.safe_load(DESCRIPTIONS.read_text())
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        engine = Engine(tmp / "home", concurrency=4, processes=2)
        try:
            _prepare(engine, tmp)
            retrieval = (
                nullcontext(LexicalRetriever(engine.store))
                if args.lexical
                else open_retriever(engine.home, engine.store)
            )
            with retrieval as retriever:
                rows, times = _draft_all(engine, retriever, cases, max(1, args.rounds))
            if not args.no_run:
                _run_offline(engine, tmp, rows)
        finally:
            engine.close()
    _report(rows, times)


def _prepare(engine: Engine, tmp: Path) -> None:
    for file in sorted((ROOT / "examples").rglob("*.yaml")):
        engine.load(file)
    for name in HISTORY:
        workload = {"database": str(tmp / "sales.db")} if name == "sqlite_report.yaml" else {}
        engine.run(engine.load(ROOT / "examples" / name), workload, timeout=60)


def _draft_all(
    engine: Engine, retriever: Any, cases: list[dict[str, Any]], rounds: int
) -> tuple[list[dict[str, Any]], list[list[float]]]:
    rows: list[dict[str, Any]] = []
    times: list[list[float]] = [[] for _ in range(rounds)]
    for r in range(rounds):
        for case in cases:
            began = time.perf_counter()
            try:
                draft = generate(
                    case["description"],
                    store=engine.store,
                    retriever=retriever,
                    llm=LlmConfig.off(),
                )
                load_text(draft.text)
                valid, error = True, None
            except DraftRejected as exc:
                draft, valid, error = None, False, str(exc)
            times[r].append((time.perf_counter() - began) * 1000)
            if r == 0:
                rows.append({"case": case, "draft": draft, "valid": valid, "error": error})
    return rows, times


def _run_offline(engine: Engine, tmp: Path, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        draft = row["draft"]
        if draft is None or draft.needs:
            continue
        file = tmp / "drafts" / f"{row['case']['id']}.yaml"
        file.parent.mkdir(exist_ok=True)
        file.write_text(draft.text)
        workload = {
            k: str(tmp / "data" / f"{row['case']['id']}-{k}")
            for k in draft.flow.workload
            if k in ("database", "duckdb_path")
        }
        row["run"] = engine.run(engine.load(file), workload, timeout=60)["status"]


def _report(rows: list[dict[str, Any]], times: list[list[float]]) -> None:
    print(f"{'description':28} {'steps':>5} {'valid':>5} {'needs':28} {'borrowed':>8} run")
    for row in rows:
        draft = row["draft"]
        steps = len(draft.flow.steps) if draft else 0
        needs = ", ".join(draft.needs) if draft else row["error"][:28]
        borrowed = len(draft.borrowed) if draft else 0
        print(
            f"{row['case']['id']:28} {steps:>5} {'yes' if row['valid'] else 'NO':>5} "
            f"{needs or '-':28} {borrowed:>8} {row.get('run', '-')}"
        )
    valid = sum(r["valid"] for r in rows)
    offline = [r for r in rows if "run" in r]
    completed = sum(r["run"] == "completed" for r in offline)
    print(f"\nvalidation rate: {valid}/{len(rows)} = {valid / len(rows):.0%}")
    print(f"offline drafts run to completion: {completed}/{len(offline)}")
    cold = statistics.median(times[0])
    print(f"time per draft, round 1 (cold): median {cold:.1f} ms, max {max(times[0]):.1f} ms")
    if len(times) > 1:
        warm = min(statistics.median(t) for t in times[1:])
        print(
            f"time per draft, best later round: median {warm:.1f} ms ({warm / cold:.2f}x round 1)"
        )


if __name__ == "__main__":
    main()
