"""`sessionlab verify`: run the conformance checks against a target and report per requirement.

The checks run under pytest in this process; the plugin writes the JSON report, from which the
console, JUnit and HTML renderings are made. The console is sessionlab's own: pytest's terminal
output is switched off, and whatever else the process writes while the checks run (a target's
stray output) is held back, shown only under `-v` or when the run broke. Everything printed and
every file written passes a last redaction of the run's keys. Exit status: 0 when the target
conforms (no MUST of the selected profiles failed, no harness error, something passed), 1 when it
does not, 3 when the run itself broke (the target never started, the pre-flight stopped it).
"""

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

import pytest

import conformance.checks as checks
from conformance import secrecy
from conformance.plugin import ChosenTarget
from conformance.reports.junit import render_junit
from conformance.reports.model import VerifyReport, render_json
from conformance.target_options import TargetOptionError, TargetOptions, make_target
from conformance.target_runner import TargetRunner
from conformance.verdicts import exit_status, judged_in
from contract.exit_codes import ExitCode


@dataclass
class VerifyOptions:
    target: TargetOptions = field(default_factory=TargetOptions)
    profiles: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
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
            # The console is sessionlab's (conformance.progress and reports.console): no
            # progress dots, tracebacks or summary line of pytest's.
            "-p",
            "no:terminal",
        ]
        # The target options are not among them: the target built from them goes to pytest as a
        # plugin object (plugin.ChosenTarget).
        pairs = [
            ("--baseline", None if self.baseline is None else str(self.baseline)),
            ("--rate", None if self.rate is None else str(self.rate)),
        ]
        for flag, value in pairs:
            if value is not None:
                args += [flag, value]
        # The reproduce lines name the report `sessionlab replay` reads, never the scratch copy.
        args += ["--sessionlab-report-path", "" if self.json_path is None else str(self.json_path)]
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


def _write(path: Path, text: str) -> None:
    # backslashreplace: a target may send lone surrogates; the report must still be written.
    path.write_text(secrecy.redact(text), encoding="utf-8", errors="backslashreplace")


def write_reports(report: dict[str, Any], options: VerifyOptions) -> None:
    report = secrecy.redact_data(report)
    document = render_json(report) + "\n"
    if options.json_path:
        _write(options.json_path, document)
    keep_run = options.target.keep_run
    if keep_run:
        keep_run.mkdir(parents=True, exist_ok=True)
        _write(keep_run / "report.json", document)
    if options.junit_path:
        _write(options.junit_path, render_junit(report))
    if options.html_path:
        from conformance.reports.html import render_html

        _write(options.html_path, render_html(report))


def say(text: str, stream: TextIO | None = None) -> None:
    """Print, with the run's keys taken out: the one way verify writes to the console."""
    print(secrecy.redact(text), file=stream or sys.stdout, flush=True)


@contextmanager
def held_output() -> Iterator[tuple[TextIO, IO[bytes]]]:
    """While the checks run, file descriptors 1 and 2 go to a scratch file; yields the real
    stdout (for the progress display) and that file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    real = os.fdopen(os.dup(saved[0]), "w", encoding="utf-8", errors="backslashreplace")
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 1)
        os.dup2(held.fileno(), 2)
        try:
            yield real, held
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            real.close()


def _held_text(held: IO[bytes]) -> str:
    held.seek(0)
    return held.read().decode("utf-8", "backslashreplace").strip()


def run_verify(options: VerifyOptions) -> int:
    secrecy.remember([options.target.client_key, options.target.internal_key])
    try:
        # Built (not started) before any check runs: options that cannot work are a usage error.
        target = make_target(options.target)
    except TargetOptionError as exc:
        say(f"sessionlab verify: {exc}", sys.stderr)
        return ExitCode.BAD_INPUT
    from conformance.progress import RedactingStream, RunProgress
    from conformance.reports.console import render_console

    with tempfile.TemporaryDirectory(prefix="sessionlab-verify-") as scratch:
        report_path = Path(scratch) / "report.json"
        with held_output() as (real, held):
            progress = RunProgress(RedactingStream.around(real))
            runner = TargetRunner(target)
            chosen = ChosenTarget(options.target, runner)
            try:
                code = pytest.main(options.pytest_args(report_path), plugins=[progress, chosen])
            finally:
                progress.close()
                # The checks close the target when done with it; this closes it when none ran.
                runner.close()
            stray = _held_text(held)
        if code == pytest.ExitCode.INTERRUPTED:
            # Checks that never ran would read as errors and the verdict as a judgement: a run
            # cut short (Ctrl-C, SIGTERM) judges nothing.
            say("sessionlab verify: interrupted before the end; no verdict", sys.stderr)
            return ExitCode.HARNESS_FAILED
        if code == pytest.ExitCode.USAGE_ERROR or not report_path.exists():
            if stray:
                say(stray, sys.stderr)
            if code == pytest.ExitCode.USAGE_ERROR:
                return ExitCode.BAD_INPUT
            say(
                f"sessionlab verify: the run produced no report (pytest exit {int(code)}); "
                "see the errors above",
                sys.stderr,
            )
            return ExitCode.HARNESS_FAILED
        report = VerifyReport.read(report_path.read_text(encoding="utf-8")).document()
    write_reports(report, options)
    if options.verbose and stray:
        say(f"output while the checks ran:\n{stray}\n", sys.stderr)
    say(render_console(report, verbose=options.verbose, tracebacks=progress.tracebacks))
    if report.get("stopped"):
        say(f"sessionlab verify: {report['stopped']}", sys.stderr)
    if options.target.keep_run:
        from conformance.keep_run import describe

        say(describe(options.target.keep_run))
    return exit_status(judged_in(report))
