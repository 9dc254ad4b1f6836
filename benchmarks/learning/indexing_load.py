"""The indexer under the engine's load: does it keep up, and does a step ever wait for it?

    python -m benchmarks.learning.indexing_load [--executions 400] [--fail 0.3]
        [--new 0.25] [--rounds 3]

One process runs the same workload in four engines, round after round, in turn:

- ``off``: no learning layer (``index=False``);
- ``thread``: the indexer in a thread of the engine's process (``index="thread",
  similar=False``), as ``playloop run`` runs it: its passes wait for a pause in the
  engine's steps (10 s at most);
- ``thread+similar``: the same with the similar-failure lookup on every failure (what
  ``playloop run`` does), which waits up to 50 ms per failing step for matches;
- ``process``: the indexer in a child process (``index=True, similar=False``), as
  ``playloop server start`` runs it (a server's steps run on workers: it has no pause to
  wait for, and its passes go as the work comes).

A round starts ``--executions`` executions of a one-step python playbook at once on the
engine's 16 step slots. A share ``--fail`` of them raise an error whose text comes from
the templates of real errors in ``similar_scale`` (PostgreSQL, HTTP, DNS, TLS, errnos,
cloud SDKs); a share ``--new`` of those texts are new in each round (a new host, table or
id: the embedder has no vector for them), the rest repeat texts seen before. For
each round: executions/s, each step's own duration (``duration_ms``: the tool's work)
p50/p99, and each execution's latency (start to end) p50/p99. For the indexed engines,
also how long after the round's last execution ended the indexer had all of the round's
failures (its lag: ``Learning.flush`` answers when it has caught up).

Each engine has its own home and SQLite database, so that one's indexer never works
during another's round: a round of an indexed engine ends when its indexer has caught up.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.learning.similar_scale import error_text
from playloop.runtime import Engine

MODES = ("off", "thread", "thread+similar", "process")
PLAYBOOK = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: indexing_load, path: bench/indexing_load}
workflow:
  - step: work
    tool:
      kind: python
      input: {fail: "{{ workload.fail }}", message: "{{ workload.message }}"}
      code: |
        if fail:
            raise RuntimeError(message)
        result = 1
"""


@dataclass(slots=True)
class Round:
    mode: str
    executions: int
    failed: int
    seconds: float
    step_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    #: seconds from the round's end until the indexer had indexed all of it
    lag: float | None = None

    @property
    def rate(self) -> float:
        return self.executions / self.seconds


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def workload(
    rng: random.Random, n: int, fail: float, new: float, seen: list[str]
) -> list[dict[str, object]]:
    """``n`` executions' workloads: a share ``fail`` fail, a share ``new`` of those with a
    text not seen before (the rest repeat one of ``seen``, which grows)."""
    out = []
    for _ in range(n):
        if rng.random() >= fail:
            out.append({"fail": 0, "message": ""})
            continue
        if not seen or rng.random() < new:
            seen.append(error_text(rng))
            message = seen[-1]
        else:
            message = rng.choice(seen)
        out.append({"fail": 1, "message": message})
    return out


def run_round(engine: Engine, flow_file: Path, mode: str, loads: list[dict[str, object]]) -> Round:
    flow = engine.load(flow_file)
    started = time.perf_counter()
    ids = [engine.start(flow, load) for load in loads]
    summaries = [engine.wait(i, timeout=300) for i in ids]
    seconds = time.perf_counter() - started
    failed = sum(s["status"] == "failed" for s in summaries)
    done = Round(mode, len(ids), failed, seconds)
    if engine.learning is not None:  # until the indexer has all of it
        assert engine.learning.flush(300), "the indexer did not catch up"
        done.lag = time.perf_counter() - started - seconds
    for execution_id in ids:
        events = engine.events(execution_id)
        for e in events:
            if e.event_type in ("step.finished", "step.failed") and e.duration_ms is not None:
                done.step_ms.append(float(e.duration_ms))
        first, last = (datetime.fromisoformat(e.created_at) for e in (events[0], events[-1]))
        done.latency_ms.append((last - first).total_seconds() * 1000)
    return done


def table(rounds: list[Round]) -> Table:
    t = Table(title="the same workload with and without the indexer (rounds in the order run)")
    columns = (
        "mode", "executions/s", "failed", "step p50 / p99 ms", "latency p50 / p99 ms", "lag s",
    )  # fmt: skip
    for col in columns:
        t.add_column(col, justify="left" if col == "mode" else "right")
    for r in rounds:
        t.add_row(
            r.mode,
            f"{r.rate:.0f}",
            str(r.failed),
            f"{_pct(r.step_ms, 50):.1f} / {_pct(r.step_ms, 99):.1f}",
            f"{_pct(r.latency_ms, 50):.0f} / {_pct(r.latency_ms, 99):.0f}",
            "-" if r.lag is None else f"{r.lag:.2f}",
        )
    return t


def summary(rounds: list[Round]) -> Table:
    t = Table(title="per mode: median of the rounds, and the ratio to off")
    for col in ("mode", "executions/s", "ratio", "step p99 ms", "latency p99 ms", "lag s"):
        t.add_column(col, justify="left" if col == "mode" else "right")
    base = statistics.median(r.rate for r in rounds if r.mode == "off")
    for mode in MODES:
        mine = [r for r in rounds if r.mode == mode]
        rate = statistics.median(r.rate for r in mine)
        lags = [r.lag for r in mine if r.lag is not None]
        t.add_row(
            mode,
            f"{rate:.0f}",
            f"{rate / base:.2f}",
            f"{statistics.median(_pct(r.step_ms, 99) for r in mine):.1f}",
            f"{statistics.median(_pct(r.latency_ms, 99) for r in mine):.0f}",
            f"{statistics.median(lags):.2f}" if lags else "-",
        )
    return t


def benchmark(
    *,
    executions: int = 400,
    fail: float = 0.3,
    new: float = 0.25,
    rounds: int = 3,
    folder: Path,
) -> list[Round]:
    """Rounds of every mode in turn (after one warm-up round each); in the order run."""
    rng = random.Random(7)
    flow_file = folder / "indexing_load.yaml"
    flow_file.write_text(PLAYBOOK)
    engines = {
        "off": Engine(folder / "off"),
        "thread": Engine(folder / "thread", index="thread", similar=False),
        "thread+similar": Engine(folder / "similar", index="thread"),
        "process": Engine(folder / "process", index=True, similar=False),
    }
    seen: list[str] = []
    try:
        for mode, engine in engines.items():  # warm-up: children, the model, the index
            run_round(engine, flow_file, mode, workload(rng, 50, fail, new, seen))
        out = []
        for _ in range(rounds):
            loads = workload(rng, executions, fail, new, seen)
            for mode, engine in engines.items():
                out.append(run_round(engine, flow_file, mode, loads))
        return out
    finally:
        for engine in engines.values():
            engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=400)
    parser.add_argument("--fail", type=float, default=0.3, help="share of executions failing")
    parser.add_argument("--new", type=float, default=0.25, help="share of failures with new text")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="playloop-indexing-") as tmp:
        rounds = benchmark(
            executions=args.executions, fail=args.fail, new=args.new, rounds=args.rounds,
            folder=Path(tmp),
        )  # fmt: skip
    console = Console(width=max(Console().width, 120))
    console.print(table(rounds))
    console.print(summary(rounds))


if __name__ == "__main__":
    main()
