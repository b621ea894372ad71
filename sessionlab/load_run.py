"""`sessionlab load`: start the targets, measure them in rounds (simulators.load.run), report.

With `--compare`, two targets are measured in one run in alternating rounds (A B B A A B ...):
whatever else the machine does at one moment weighs on both alike, and the ratios printed are
of numbers measured side by side.
"""

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from conformance.target_options import TargetOptionError, TargetOptions, make_target
from conformance.target_runner import TargetRunner
from conformance.targets import Target, TargetError
from conformance.targets.launched import timeout_scale
from conformance.targets.process_target import ProcessTarget
from contract.exit_codes import ExitCode
from simulators.load.cpu import groups_cpu_seconds
from simulators.load.loopback import RemoteTargetError, loopback_only
from simulators.load.plan import LoadPlan, PlanError
from simulators.load.report import print_report, write_html, write_json
from simulators.load.run import LoadTarget, Measured, measure

# How long a launched target may take to start (a container, a slow process).
START_TIMEOUT = 120.0
# A factory is MODULE:CALLABLE; a Windows drive or a URL never matches.
_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class LoadOptions:
    target: TargetOptions = field(default_factory=TargetOptions)
    plan: LoadPlan = field(default_factory=LoadPlan)
    # A second target: a target file, a gateway URL, MODULE:CALLABLE or `reference`.
    compare: str | None = None
    # Rounds per target with --compare (alternating), else 1.
    rounds: int = 4
    json_path: Path | None = None
    html_path: Path | None = None
    allow_remote: bool = False


def compare_options(spec: str, first: TargetOptions) -> TargetOptions:
    """The second target of `--compare SPEC`, named the ways the first one can be."""
    if spec == "reference":
        return TargetOptions(turn_timeout=first.turn_timeout)
    if spec.startswith(("http://", "https://")):
        return TargetOptions(
            gateway_url=spec, client_key=first.client_key, turn_timeout=first.turn_timeout
        )
    if _FACTORY.fullmatch(spec) and not Path(spec).exists():
        return TargetOptions(target_factory=spec)
    return TargetOptions(target_file=spec, turn_timeout=first.turn_timeout)


def cpu_reader(target: Target) -> Callable[[], float | None]:
    """A reader of the CPU seconds the target's processes have used so far; it reads None when
    sessionlab cannot see them (a URL, a container, the reference in sessionlab's own process)."""
    if not isinstance(target, ProcessTarget):
        return lambda: None

    def read() -> float | None:
        return groups_cpu_seconds([target.pid("runtime"), target.pid("gateway")])

    return read


def run_load(options: LoadOptions, out: TextIO | None = None, err: TextIO | None = None) -> int:
    return run_load_measured(options, out, err)[0]


def run_load_measured(
    options: LoadOptions, out: TextIO | None = None, err: TextIO | None = None
) -> tuple[int, Measured | None]:
    """`run_load`, with what it measured (None when the run did not start: status 2 or 3)."""
    out = out or sys.stdout
    err = err or sys.stderr
    specs = [options.target]
    if options.compare is not None:
        specs.append(compare_options(options.compare, options.target))
    try:
        for spec in specs:
            if spec.gateway_url and not options.allow_remote:
                loopback_only(spec.gateway_url)
        targets = [make_target(spec) for spec in specs]
    except (TargetOptionError, RemoteTargetError, PlanError) as exc:
        print(f"sessionlab load: {exc}", file=err)
        return ExitCode.BAD_INPUT, None
    runners: list[TargetRunner] = []
    try:
        started: list[LoadTarget] = []
        for target in targets:
            runner = TargetRunner(target)
            runners.append(runner)
            endpoints = runner.start(START_TIMEOUT * timeout_scale())
            if not options.allow_remote:
                loopback_only(endpoints.gateway_url)
            started.append(LoadTarget(target.name, endpoints, cpu_reader(target)))
        measured = measure(options.plan, options.rounds, started, err)
    except RemoteTargetError as exc:
        print(f"sessionlab load: {exc}", file=err)
        return ExitCode.BAD_INPUT, None
    except (TargetError, TimeoutError) as exc:
        print(f"sessionlab load: the target did not start: {exc}", file=err)
        return ExitCode.HARNESS_FAILED, None
    finally:
        for runner in runners:
            runner.close()
    print_report(measured, out)
    if options.json_path is not None:
        write_json(measured, options.json_path)
        print(f"JSON report: {options.json_path}", file=out)
    if options.html_path is not None:
        write_html(measured, options.html_path)
        print(f"HTML report: {options.html_path}", file=out)
    return (ExitCode.FAILED if measured.errors else ExitCode.OK), measured
