"""The workloads of DESIGN.md section 8, as real playbook files."""

from __future__ import annotations

from pathlib import Path

HEADER = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {{name: {name}, path: bench/{name}}}\nworkflow:\n"


def w1_chain(folder: Path, n: int = 100) -> Path:
    """A chain of n trivial python steps, each passing its result on."""
    lines = [HEADER.format(name="w1_chain")]
    for i in range(n):
        prev = f'"{{{{ s{i - 1} }}}}"' if i else "0"
        lines.append(
            f"  - step: s{i}\n    tool: {{kind: python, input: {{x: {prev}}}, code: 'result = x + 1'}}\n"
        )
        if i < n - 1:
            lines.append(f"    next: [{{step: s{i + 1}}}]\n")
    path = folder / "w1_chain.yaml"
    path.write_text("".join(lines))
    return path


def w2_fan_out(folder: Path, n: int = 200) -> Path:
    """A fan-out of n independent python steps and a join."""
    arcs = "".join(f"        - {{step: b{i}}}\n" for i in range(n))
    lines = [
        HEADER.format(name="w2_fan_out"),
        "  - step: start\n    tool: {kind: noop}\n    next:\n      spec: {mode: inclusive}\n      arcs:\n",
        arcs,
    ]
    for i in range(n):
        lines.append(
            f"  - step: b{i}\n    tool: {{kind: python, code: 'result = {i}'}}\n    next: {{arcs: [{{step: join}}]}}\n"
        )
    lines.append("  - step: join\n    tool: {kind: noop, result: joined}\n")
    path = folder / "w2_fan_out.yaml"
    path.write_text("".join(lines))
    return path


def w3_one_step(folder: Path) -> Path:
    """A one-step playbook (started many times)."""
    path = folder / "w3_one_step.yaml"
    path.write_text(
        HEADER.format(name="w3_one_step")
        + "  - step: only\n    tool: {kind: python, code: 'result = 1'}\n"
    )
    return path
