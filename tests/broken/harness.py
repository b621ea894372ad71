"""Run `sessionlab verify` against a broken server and read the per-requirement verdicts."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.fixtures.stack import deadline

REPO = Path(__file__).resolve().parents[2]


def verify(factory: str, *only: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON report of a verify run against `tests.broken.<module>:<callable>`."""
    return verify_target(("--target-factory", factory), *only, extra=extra)


def verify_target(
    target: tuple[str, ...], *only: str, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The JSON report of a verify run against the target the options name."""
    with tempfile.TemporaryDirectory(prefix="sessionlab-broken-") as scratch:
        report_path = Path(scratch) / "report.json"
        command = [
            sys.executable,
            "-m",
            "sessionlab.cli",
            "verify",
            *target,
            "--json",
            str(report_path),
            *(arg for prefix in only for arg in ("--only", prefix)),
            *extra,
        ]
        result = subprocess.run(
            command,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=deadline(300),
            check=False,
        )
        if not report_path.exists():
            raise AssertionError(
                f"verify wrote no report (exit {result.returncode}):\n{result.stderr}"
            )
        report: dict[str, Any] = json.loads(report_path.read_text())
        report["exit_code"] = result.returncode
        report["stdout"] = result.stdout
        return report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in report["requirements"]}


def not_passing(report: dict[str, Any]) -> dict[str, str]:
    """Requirements that ran and did not pass (skips by profile or --only left out)."""
    return {
        r["id"]: r["status"]
        for r in report["requirements"]
        if r["status"] in ("failed", "warning", "error")
    }


def message(report: dict[str, Any], requirement_id: str) -> str:
    for requirement in report["requirements"]:
        if requirement["id"] == requirement_id:
            return str(requirement["message"])
    raise KeyError(requirement_id)


def failing_transcript(report: dict[str, Any], requirement_id: str) -> list[dict[str, Any]]:
    for requirement in report["requirements"]:
        if requirement["id"] == requirement_id:
            for check in requirement["checks"]:
                if check["outcome"] == "failed":
                    return list(check["transcript"])
    return []


# A timing SHOULD (R-AUTH-2) measures a few milliseconds: on a busy machine it may warn by noise.
NOISY = frozenset({"R-AUTH-2"})


def collateral(report: dict[str, Any], cause: str, *also_failing: str) -> dict[str, str]:
    """Requirements that moved for a reason other than `cause`: neither passed (fully or in
    part), nor blocked by the cause, nor skipped with a stated reason. Empty when the verdicts
    point at the cause alone."""
    moved: dict[str, str] = {}
    for requirement in report["requirements"]:
        identity, status = requirement["id"], requirement["status"]
        if identity in (cause, *also_failing) or (identity in NOISY and status == "warning"):
            continue
        if status in ("passed", "partial") or (status == "skipped" and requirement["message"]):
            continue
        if status == "blocked" and set(requirement.get("blocked_by", [])) <= {cause, *also_failing}:
            continue
        moved[identity] = f"{status}: {requirement['message'][:300]}"
    return moved
