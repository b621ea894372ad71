"""The reference passes durability as a `process` target, on SQLite and on PostgreSQL: 20 IDEs
under a schedule of 20 faults (kill -9, pause and restart of the runtime, gateway restarts, cut,
reset, refused and slowed connections on both hops), run by `sessionlab durability` as the
README shows it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.stack import deadline

REPO = Path(__file__).resolve().parents[1]
PROCESS_TARGET = REPO / "examples" / "targets" / "reference-process.yaml"


def _target_file(tmp_path: Path, database_url: str | None) -> Path:
    """The shipped process target, its runtime on the given database when there is one."""
    description = yaml.safe_load(PROCESS_TARGET.read_text())
    if database_url is not None:
        description["services"]["runtime"]["command"] += ["--database-url", database_url]
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(description))
    return path


def _durability(target: Path, report: Path, seed: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sessionlab.cli", "durability", "--target", str(target)]
    command += ["--ides", "20", "--faults", "20", "--seed", str(seed), "--json", str(report)]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=deadline(400), check=False
    )


def _assert_passed_under_twenty_faults(
    result: subprocess.CompletedProcess[str], report: Path
) -> None:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    document = json.loads(report.read_text())
    assert document["passed"] is True
    assert document["ides"] == 20
    applied = [fault for fault in document["faults"] if not fault["error"]]
    assert len(applied) >= 20, document["faults"]
    kinds = {fault["name"].split("@")[0] for fault in applied}
    # A process target suffers every kind of fault: the runtime's kill among them.
    assert {"kill", "restart", "pause", "gateway_restart"} & kinds, kinds
    assert document["operations"]["turn"]["ok"] > 0
    assert "nemesis schedule, seed" in result.stdout


def test_the_reference_on_sqlite_loses_nothing_under_twenty_faults(tmp_path: Path) -> None:
    report = tmp_path / "durability.json"
    result = _durability(_target_file(tmp_path, None), report, seed=20)
    _assert_passed_under_twenty_faults(result, report)


def test_the_reference_on_postgresql_loses_nothing_under_twenty_faults(
    tmp_path: Path, postgres_url: str
) -> None:
    report = tmp_path / "durability.json"
    result = _durability(_target_file(tmp_path, postgres_url), report, seed=21)
    _assert_passed_under_twenty_faults(result, report)


def test_a_target_reached_by_url_is_refused_with_the_reason(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessionlab.cli",
            "durability",
            "--gateway-url",
            "http://127.0.0.1:9",
            "--ides",
            "1",
            "--faults",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(60),
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "offers no control of its runtime" in result.stderr


@pytest.mark.parametrize("fault", ["melt", "cut@moon"])
def test_an_unknown_fault_name_is_a_usage_error(fault: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessionlab.cli",
            "durability",
            "--fault",
            fault,
            "--ides",
            "1",
            "--faults",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=deadline(120),
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"unknown fault {fault!r}" in result.stderr
