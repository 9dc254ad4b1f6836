"""The postgres pass runs only the tests that request the ``backend`` fixture (tests/conftest.py):
no test may learn the backend under test another way, or it would run on SQLite only."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def backend_reads(tree: ast.AST) -> list[int]:
    """Lines that read ``BACKEND`` or name ``PLAYLOOP_TEST_BACKEND`` (docstrings aside)."""
    lines = []
    for node in ast.walk(tree):
        if (
            (isinstance(node, ast.Name) and node.id == "BACKEND")
            or (isinstance(node, ast.Attribute) and node.attr == "BACKEND")
            or (isinstance(node, ast.alias) and node.name == "BACKEND")
            or (isinstance(node, ast.Constant) and node.value == "PLAYLOOP_TEST_BACKEND")
        ):
            lines.append(getattr(node, "lineno", 0))
    return lines


def test_only_the_root_conftest_reads_the_backend() -> None:
    found = {
        str(path.relative_to(TESTS)): lines
        for path in sorted(TESTS.rglob("*.py"))
        if path not in (TESTS / "conftest.py", Path(__file__).resolve())
        and (lines := backend_reads(ast.parse(path.read_text(), str(path))))
    }
    assert found == {}, "request the `backend` fixture instead"


def test_the_check_sees_each_way_of_reading_it() -> None:
    code = (
        "from tests.conftest import BACKEND\n"
        "import tests.conftest as c\n"
        "x = c.BACKEND\n"
        "y = os.environ['PLAYLOOP_TEST_BACKEND']\n"
    )
    assert sorted(backend_reads(ast.parse(code))) == [1, 3, 4]
