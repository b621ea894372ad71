"""`sessionlab run [FILE...]`: run test plans against a target and report step by step.

With no file named, the plans shipped in the package (scenarios/plans/) run: they are package
data, so an installed sessionlab runs them too.
"""

import asyncio
import json
import sys
from pathlib import Path

from conformance.keep_run import describe, keep_logs
from conformance.target_options import TargetOptionError, TargetOptions, make_target
from conformance.target_runner import TargetRunner
from conformance.targets import TargetError
from conformance.targets.description import TargetFileError, load_description
from contract.exit_codes import ExitCode
from scenarios.junit import render_junit
from scenarios.loader import ScenarioError, load_scenarios
from scenarios.model import CLIENTS, Client
from scenarios.results import client_differences
from scenarios.session import run_plans

BUILTIN_PLANS = Path(__file__).resolve().parent / "plans"


def _plan_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")))
        else:
            files.append(path)
    return files


def chosen_clients(choice: str | None, target_file: str | None) -> tuple[Client, ...]:
    """`--client` if given (`both`: every model), else the target file's `client:`, else
    the designed model."""
    if choice == "both":
        return CLIENTS
    if choice is not None:
        return tuple(client for client in CLIENTS if client == choice)
    if target_file is not None:
        client = load_description(Path(target_file)).client
        if client is not None:
            return (client,)
    return ("designed",)


def run_command(
    paths: list[Path],
    options: TargetOptions,
    junit_path: Path | None = None,
    json_path: Path | None = None,
    client: str | None = None,
    only: list[str] | None = None,
) -> int:
    try:
        # Every file is validated before anything runs: a typo in the last plan costs no time.
        scenarios = load_scenarios(_plan_files(paths or [BUILTIN_PLANS]))
    except ScenarioError as exc:
        print(f"sessionlab run: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if not scenarios:
        print("sessionlab run: no scenario files found", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if only:
        unknown = sorted(set(only) - {scenario.id for scenario in scenarios})
        if unknown:
            known = ", ".join(scenario.id for scenario in scenarios)
            print(
                f"sessionlab run: --only {', '.join(unknown)}: no such plan (known: {known})",
                file=sys.stderr,
            )
            return ExitCode.BAD_INPUT
        scenarios = [scenario for scenario in scenarios if scenario.id in only]
    try:
        clients = chosen_clients(client, options.target_file)
        target = make_target(options)
    except (TargetOptionError, TargetFileError) as exc:
        print(f"sessionlab run: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    runner = TargetRunner(target)
    try:
        try:
            endpoints = runner.start(timeout=120)
        except (TargetError, OSError, TimeoutError) as exc:
            print(f"sessionlab run: the target did not start: {exc}", file=sys.stderr)
            return ExitCode.HARNESS_FAILED
        print(
            f"target {runner.name}: gateway {endpoints.gateway_url}; "
            f"client model(s): {', '.join(clients)}",
            flush=True,
        )
        results = asyncio.run(run_plans(scenarios, runner, clients=clients))
        if options.keep_run is not None:
            keep_logs(runner, options.keep_run)
    finally:
        runner.close()
    for result in results:
        print(result.render(), flush=True)
    counts = {
        status: sum(r.status == status for r in results)
        for status in ("passed", "failed", "skipped", "error")
    }
    differences = client_differences(results)
    for line in differences:
        print(line)
    notes = sum(len(result.notes) for result in results)
    print(
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
        + (f"; {notes} note(s) on known client failures" if notes else "")
    )
    if junit_path:
        junit_path.write_text(render_junit(results), encoding="utf-8")
    document = {
        "scenarios": [result.as_dict() for result in results],
        "summary": {**counts, "clients": list(clients), "client_differences": differences},
    }
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if json_path:
        json_path.write_text(text, encoding="utf-8")
    if options.keep_run is not None:
        options.keep_run.mkdir(parents=True, exist_ok=True)
        (options.keep_run / "plans.json").write_text(text, encoding="utf-8")
        print(describe(options.keep_run))
    return ExitCode.FAILED if counts["failed"] or counts["error"] else ExitCode.OK
