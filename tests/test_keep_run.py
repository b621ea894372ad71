"""`--keep-run DIR` keeps what a run made (logs, data, the report with its transcripts), for the
reference in process and for a launched target, through the real `sessionlab` command; without it
nothing of the run is left."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.stack import deadline
from tests.fixtures.thirdparty.harness import EXAMPLES

SESSIONLAB = Path(sys.executable).parent / "sessionlab"
KEY = "keep-run-client-key-7Qz"


def sessionlab(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SESSIONLAB), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=deadline(180),
        check=False,
    )


@pytest.mark.parametrize(
    "target",
    [(), ("--target", str(EXAMPLES / "reference-process.yaml"))],
    ids=["reference-in-process", "process-target"],
)
def test_verify_keeps_logs_data_and_the_report(tmp_path: Path, target: tuple[str, ...]) -> None:
    keep = tmp_path / "kept"
    result = sessionlab(
        tmp_path,
        "verify",
        *target,
        "--client-key",
        KEY,
        "--only",
        "G-LOG-1",
        "--keep-run",
        str(keep),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"kept in {keep}: data/, logs/, report.json" in result.stdout
    gateway_log = (keep / "logs" / "gateway.log").read_text()
    assert "WebSocket connected" in gateway_log
    assert (keep / "logs" / "runtime.log").is_file()
    assert any((keep / "data").iterdir())
    report = json.loads((keep / "report.json").read_text())
    (log_check,) = [r for r in report["requirements"] if r["id"] == "G-LOG-1"]
    assert log_check["status"] == "passed"
    assert any(check["transcript"] for check in log_check["checks"])
    for path in keep.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".json"):
            assert KEY not in path.read_text(errors="replace"), path


def test_run_keeps_the_plans_results_and_the_logs(tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    result = sessionlab(tmp_path, "run", "--only", "TP-1", "--keep-run", str(keep))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Created new session" in (keep / "logs" / "runtime.log").read_text()
    (plan,) = json.loads((keep / "plans.json").read_text())["scenarios"]
    assert (plan["id"], plan["status"]) == ("TP-1", "passed")
