"""`sessionlab durability`: one durability run against a controllable target, as long as asked,
with its reports. The target is built, started and closed here; the run itself
(simulators.durability) only needs its endpoints and a way to hurt its services."""

import asyncio
import sys
from pathlib import Path

from conformance.keep_run import describe, keep_logs
from conformance.target_options import TargetOptionError, TargetOptions, make_target
from conformance.target_runner import TargetRunner
from conformance.targets import TargetError
from conformance.targets.description import TargetFileError
from contract.exit_codes import ExitCode
from simulators.durability.nemesis import controllable
from simulators.durability.report import render_html, render_json, render_junit
from simulators.durability.run import DurabilitySettings, NotControllable, run_durability
from simulators.durability.schedule import ScheduleError, parse_name


def durability_command(
    options: TargetOptions,
    settings: DurabilitySettings,
    json_path: Path | None = None,
    junit_path: Path | None = None,
    html_path: Path | None = None,
) -> int:
    try:
        for name in settings.fault_names:
            parse_name(name)
        target = make_target(options)
    except (TargetOptionError, TargetFileError, ScheduleError) as exc:
        print(f"sessionlab durability: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    runner = TargetRunner(target)
    # Before anything starts: a target that cannot be faulted is refused at once.
    reason = controllable(runner)
    if reason is not None:
        runner.close()
        print(f"sessionlab durability: {reason}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        try:
            endpoints = runner.start(timeout=120)
        except (TargetError, OSError, TimeoutError) as exc:
            print(f"sessionlab durability: the target did not start: {exc}", file=sys.stderr)
            return ExitCode.HARNESS_FAILED
        print(f"target {runner.name}: gateway {endpoints.gateway_url}", flush=True)
        try:
            result = asyncio.run(
                run_durability(
                    runner,
                    endpoints,
                    settings,
                    profiles=runner.profiles,
                    turn_timeout=runner.turn_timeout,
                    announce=lambda text: print(text, flush=True),
                )
            )
        except NotControllable as exc:
            print(f"sessionlab durability: skipped: {exc}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        except ScheduleError as exc:
            print(f"sessionlab durability: {exc}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        if options.keep_run is not None:
            keep_logs(runner, options.keep_run)
    finally:
        runner.close()
    print(result.render(), flush=True)
    if options.keep_run is not None:
        options.keep_run.mkdir(parents=True, exist_ok=True)
        (options.keep_run / "durability.json").write_text(render_json(result), encoding="utf-8")
        print(describe(options.keep_run))
    for path, render in ((json_path, render_json), (junit_path, render_junit)):
        if path is not None:
            path.write_text(render(result), encoding="utf-8")
    if html_path is not None:
        html_path.write_text(render_html(result), encoding="utf-8")
    return ExitCode.OK if result.passed else ExitCode.FAILED
