"""The target options: declared once for argparse and pytest, and one target built from them per
run."""

import argparse
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.target_options import TargetOptions
from conformance.targets import loader
from tests.fixtures.stack import deadline

pytest_plugins = ["pytester"]

# A factory that notes each call, and each close of what it made, in the file $COUNTED_FILE.
COUNTED = """
import os

from conformance.targets.reference_target import ReferenceTarget


def _note(line):
    with open(os.environ["COUNTED_FILE"], "a", encoding="utf-8") as notes:
        notes.write(line + "\\n")


class Counted(ReferenceTarget):
    async def close(self):
        await super().close()
        _note("closed")


def reference():
    _note("built")
    return Counted()
"""

GIVEN = [
    *("--target", "acme.yaml"),
    *("--runtime-url", "http://127.0.0.1:8001"),
    *("--client-key", "c-key"),
    *("--internal-key", "i-key"),
    *("--turn-timeout", "2.5"),
    *("--keep-run", "kept"),
]
EXPECTED = TargetOptions(
    target_file="acme.yaml",
    runtime_url="http://127.0.0.1:8001",
    client_key="c-key",
    internal_key="i-key",
    turn_timeout=2.5,
    keep_run=Path("kept"),
)


def verify_counted(
    tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    (tmp_path / "counted.py").write_text(COUNTED, encoding="utf-8")
    notes = tmp_path / "notes.txt"
    command = [sys.executable, "-m", "sessionlab.cli", "verify"]
    result = subprocess.run(
        [*command, "--target-factory", "counted:reference", *args],
        # The factory's module is found in the working directory, as a user's would be.
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=deadline(180),
        check=False,
        env={**os.environ, "COUNTED_FILE": str(notes)},
    )
    lines = notes.read_text(encoding="utf-8").split() if notes.exists() else []
    return result, lines


def test_verify_calls_a_target_factory_once_and_closes_what_it_made(tmp_path: Path) -> None:
    result, notes = verify_counted(tmp_path, "--only", "G-HEALTH-1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert notes == ["built", "closed"]


def test_a_target_no_check_needed_is_closed_all_the_same(tmp_path: Path) -> None:
    # --only that names no requirement stops pytest before any check asks for the target.
    result, notes = verify_counted(tmp_path, "--only", "NOPE-9")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert notes == ["built", "closed"]


def test_the_subcommands_options_come_back_as_given() -> None:
    parser = argparse.ArgumentParser()
    TargetOptions.add_to(parser)
    assert TargetOptions.from_args(parser.parse_args(GIVEN)) == EXPECTED
    assert TargetOptions.from_args(parser.parse_args([])) == TargetOptions()


def test_pytest_takes_the_same_options(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig(*GIVEN)
    assert TargetOptions.from_pytest(config) == EXPECTED


def test_options_are_given_back_as_a_command_line_in_the_order_named() -> None:
    options = TargetOptions(gateway_url="http://g", turn_timeout=3.0, client_key="")
    assert options.args("turn_timeout", "target_file", "client_key", "gateway_url") == [
        *("--turn-timeout", "3.0"),
        *("--gateway-url", "http://g"),
    ]


def test_the_keys_stay_out_of_the_repr() -> None:
    assert "c-key" not in repr(EXPECTED)
    assert "i-key" not in repr(EXPECTED)


def test_the_loader_does_not_import_the_options() -> None:
    """One way only: the options build targets with the loader, never the other way round (not
    even inside a function)."""
    tree = ast.parse(Path(loader.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "conformance.target_options" not in imported
