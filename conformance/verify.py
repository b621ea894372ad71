"""`sessionlab verify`: run the conformance checks against a target and report per requirement.

The checks run under pytest in this process; the plugin writes the JSON report, from which the
console, JUnit and HTML renderings are made. Exit status: 0 when the target conforms (no MUST of
the selected profiles failed, no harness error, something passed), 1 when it does not, 3 when the
run itself broke (e.g. the target never started).
"""

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import conformance.checks as checks
from conformance.reports.junit import render_junit
from conformance.target_options import TargetOptionError, TargetOptions, make_target
from conformance.verdicts import HARNESS_FAILED, exit_status

USAGE_ERROR = 2


@dataclass
class VerifyOptions:
    target: str | None = None
    target_factory: str | None = None
    gateway_url: str | None = None
    runtime_url: str | None = None
    client_key: str | None = None
    internal_key: str | None = None
    profiles: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
    turn_timeout: float | None = None
    deep: bool = False
    json_path: Path | None = None
    junit_path: Path | None = None
    html_path: Path | None = None
    verbose: bool = False
    baseline: Path | None = None
    rate: float | None = None

    def pytest_args(self, report_path: Path) -> list[str]:
        args = [
            "--pyargs",
            "conformance.checks",
            # The checks carry their own configuration: a project's pytest settings (warnings
            # as errors, addopts, test paths) must not change how a target is judged.
            "-c",
            os.devnull,
            # Node ids read conformance/checks/test_x.py::test_y, wherever the package lives.
            "--rootdir",
            str(Path(checks.__file__).resolve().parents[2]),
            "-p",
            "no:cacheprovider",
            # Checking the target options has imported plugin modules (anyio) already; pytest's
            # warning that it cannot rewrite their asserts says nothing about the target.
            "-W",
            "ignore::pytest.PytestAssertRewriteWarning",
            # Nor conftest.py files: pytest loads those of the working directory's test*/ folders
            # even for --pyargs, so a run from a project's root would pick up its fixtures.
            "--noconftest",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--sessionlab-json",
            str(report_path),
            *hypothesis_dir_args(),
            "-q" if not self.verbose else "-v",
        ]
        pairs = [
            ("--target", self.target),
            ("--target-factory", self.target_factory),
            ("--gateway-url", self.gateway_url),
            ("--runtime-url", self.runtime_url),
            ("--client-key", self.client_key),
            ("--internal-key", self.internal_key),
            ("--turn-timeout", None if self.turn_timeout is None else str(self.turn_timeout)),
            ("--baseline", None if self.baseline is None else str(self.baseline)),
            ("--rate", None if self.rate is None else str(self.rate)),
        ]
        for flag, value in pairs:
            if value is not None:
                args += [flag, value]
        for profile in self.profiles:
            args += ["--profile", profile]
        for prefix in self.only:
            args += ["--only", prefix]
        if self.deep:
            args.append("--deep")
        return args


def hypothesis_dir_args() -> list[str]:
    """Hypothesis keeps caches (constants, unicode data) under `.hypothesis` in the working
    directory whatever its database setting; a verify run keeps them in the user's cache directory
    instead, unless HYPOTHESIS_STORAGE_DIRECTORY says where."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return []
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return ["--sessionlab-hypothesis-dir", str(cache / "sessionlab" / "hypothesis")]


def write_reports(report: dict[str, Any], options: VerifyOptions) -> None:
    # backslashreplace: a target may send lone surrogates; the report must still be written.
    if options.json_path:
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        options.json_path.write_text(text, encoding="utf-8", errors="backslashreplace")
    if options.junit_path:
        options.junit_path.write_text(
            render_junit(report), encoding="utf-8", errors="backslashreplace"
        )
    if options.html_path:
        from conformance.reports.html import render_html

        options.html_path.write_text(
            render_html(report), encoding="utf-8", errors="backslashreplace"
        )


def target_problem(options: VerifyOptions) -> str | None:
    """Why the target options cannot work, found before any check runs (nothing is started)."""
    target_options = TargetOptions(
        target_file=options.target,
        target_factory=options.target_factory,
        gateway_url=options.gateway_url,
        runtime_url=options.runtime_url,
        client_key=options.client_key,
        internal_key=options.internal_key,
        turn_timeout=options.turn_timeout,
    )
    try:
        make_target(target_options)
    except TargetOptionError as exc:
        return str(exc)
    return None


def run_verify(options: VerifyOptions) -> int:
    problem = target_problem(options)
    if problem is not None:
        print(f"sessionlab verify: {problem}", file=sys.stderr)
        return USAGE_ERROR
    with tempfile.TemporaryDirectory(prefix="sessionlab-verify-") as scratch:
        report_path = Path(scratch) / "report.json"
        code = pytest.main(options.pytest_args(report_path))
        if code == pytest.ExitCode.USAGE_ERROR:
            return USAGE_ERROR
        if not report_path.exists():
            print(
                f"sessionlab verify: the run produced no report (pytest exit {int(code)}); "
                "see the errors above",
                file=sys.stderr,
            )
            return HARNESS_FAILED
        report = json.loads(report_path.read_text(encoding="utf-8"))
    write_reports(report, options)
    if report.get("stopped"):
        print(f"sessionlab verify: {report['stopped']}", file=sys.stderr)
    return exit_status(report)
