"""docs/client-fidelity.md is kept true: every test a row names exists, and every test of the
shipped model's wire file is named by some row."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "client-fidelity.md"
WIRE_TESTS = ROOT / "tests" / "test_ide_shipped_client.py"
COLUMNS = ["behaviour", "real client file", "designed model", "shipped model", "same/differs"]


def _rows() -> list[list[str]]:
    lines = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[: len(COLUMNS)] == COLUMNS
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _wire_tests() -> set[str]:
    tree = ast.parse(WIRE_TESTS.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_row_is_complete_and_says_same_or_differs() -> None:
    rows = _rows()
    assert rows
    for row in rows:
        assert len(row) == len(COLUMNS) + 1, row
        assert all(row), row
        assert row[4] in {"same", "differs"}, row


def test_every_named_test_exists() -> None:
    tests = _wire_tests()
    for row in _rows():
        named = re.findall(r"`(test_\w+)`", row[-1])
        assert named, f"row {row[0]!r} names no test"
        missing = [name for name in named if name not in tests]
        assert not missing, f"row {row[0]!r} names tests that do not exist: {missing}"


def test_every_wire_test_is_named_by_a_row() -> None:
    named = {name for row in _rows() for name in re.findall(r"`(test_\w+)`", row[-1])}
    assert _wire_tests() - named == set()
