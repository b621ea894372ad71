"""The `sessionlab` command line. Each subcommand lives in the package that owns its work; those
that start and control targets for the simulators (`load`, `bench`, `durability`) live here,
since the simulators stand below the targets and take only their endpoints."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance.target_options import TargetOptions
from contract import __version__
from contract.exit_codes import ExitCode
from contract.requirements import PROFILES


def _serve(args: argparse.Namespace) -> int:
    from reference.serve import serve_command

    return serve_command(args, args.serve_parser)


def _migrate(args: argparse.Namespace) -> int:
    from reference.serve import migrate_command

    return migrate_command(args)


def _schemas(args: argparse.Namespace) -> int:
    from sessionlab.schemas import SCHEMA_DIR, stale_schemas, write_schemas

    directory = Path(args.dir) if args.dir else SCHEMA_DIR
    if args.check:
        stale = stale_schemas(directory)
        if stale:
            print(f"stale JSON Schemas in {directory}: {', '.join(stale)}", file=sys.stderr)
            print("run `sessionlab schemas` and commit the result", file=sys.stderr)
            return ExitCode.FAILED
        print(f"JSON Schemas in {directory} are current")
        return ExitCode.OK
    written = write_schemas(directory)
    print(f"wrote {len(written)} JSON Schemas to {directory}")
    return ExitCode.OK


def _run(args: argparse.Namespace) -> int:
    from scenarios.cli import run_command

    return run_command(
        args.files,
        TargetOptions.from_args(args),
        junit_path=args.junit_xml,
        json_path=args.json,
        client=args.client,
        only=args.only or [],
    )


def _positive_rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        rate = 0.0
    if not rate > 0:
        raise argparse.ArgumentTypeError(f"a positive number of requests a second, not {value!r}")
    return rate


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"a positive number of seconds, not {value!r}")
    return seconds


def _smoke(args: argparse.Namespace) -> int:
    from sessionlab.smoke import run_smoke

    return run_smoke(data_dir=args.data_dir)


def _verify(args: argparse.Namespace) -> int:
    from conformance.verify import VerifyOptions, run_verify

    return run_verify(
        VerifyOptions(
            target=TargetOptions.from_args(args),
            profiles=args.profile or [],
            only=args.only or [],
            deep=args.deep,
            json_path=args.json,
            junit_path=args.junit_xml,
            html_path=args.html,
            verbose=args.verbose,
            baseline=args.baseline,
            rate=args.rate,
        )
    )


def _replay(args: argparse.Namespace) -> int:
    from conformance.replay import ReplayOptions, run_replay

    return run_replay(
        ReplayOptions(
            report=args.report,
            requirement_id=args.requirement,
            gateway_url=args.gateway_url,
            runtime_url=args.runtime_url,
            client_key=args.client_key,
            internal_key=args.internal_key,
            user_token=args.user_token,
            timeout=args.timeout,
        )
    )


def _bench(args: argparse.Namespace) -> int:
    from sessionlab.bench import bench_command

    return bench_command(
        scale=args.scale, compare=args.compare, json_path=args.json, html_path=args.html
    )


def _durability(args: argparse.Namespace) -> int:
    from sessionlab.durability import durability_command
    from simulators.durability.run import DurabilitySettings

    return durability_command(
        TargetOptions.from_args(args),
        DurabilitySettings(
            ides=args.ides,
            faults=args.faults,
            seed=args.seed,
            fault_names=tuple(args.fault or ()),
            budget=args.budget,
        ),
        json_path=args.json,
        junit_path=args.junit_xml,
        html_path=args.html,
    )


def _load(args: argparse.Namespace) -> int:
    from sessionlab.load import load_command

    return load_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionlab",
        description="Prove whether an implementation of the CodeLab session protocol works.",
    )
    parser.add_argument("--version", action="version", version=f"sessionlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the reference runtime and gateway",
        description="Run the reference Agent Runtime and Gateway on loopback until Ctrl-C or "
        "SIGTERM. Every option may instead be set as SESSIONLAB_<OPTION>, upper case with "
        "dashes as underscores (e.g. SESSIONLAB_GATEWAY_PORT=8000, SESSIONLAB_TOLERANT=yes; "
        "repeated values separated by spaces); a flag wins over its variable. Exit status: 0 "
        "after a signal, 2 for a value it cannot serve.",
    )
    # Every option defaults to None: a value means the user gave it, by flag or variable.
    serve.add_argument(
        "service",
        nargs="?",
        default="both",
        choices=["both", "runtime", "gateway"],
        help="which service to run (default: both)",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port of the one service named")
    serve.add_argument("--runtime-port", type=int, help="runtime port (default 8001)")
    serve.add_argument("--gateway-port", type=int, help="gateway port (default 8000)")
    serve.add_argument("--data-dir", type=Path, help="where the SQLite file lives")
    serve.add_argument("--database-url", help="SQLAlchemy async URL instead of the SQLite file")
    serve.add_argument("--runtime-url", help="runtime base URL the gateway talks to")
    serve.add_argument(
        "--internal-key", help="gateway-to-runtime key (default with both: random per run)"
    )
    serve.add_argument("--client-key", help="key the gateway requires of clients (default none)")
    serve.add_argument("--turn-timeout", type=float, help="seconds one agent turn may take")
    serve.add_argument(
        "--grace-period",
        type=float,
        help="seconds a stop waits for turns in flight before closing sockets (default 5; 0 "
        "cuts them at once); new turns and sockets are refused meanwhile",
    )
    serve.add_argument(
        "--max-bytes",
        type=int,
        help="largest REST body and WebSocket frame, in bytes (default 4194304): 413 and close "
        "1009 beyond it",
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="a browser origin allowed to open sockets and call REST (repeatable; default none: "
        "requests carrying any Origin are refused, requests without one are served)",
    )
    serve.add_argument(
        "--user-token",
        action="append",
        metavar="NAME=TOKEN",
        help="turn user auth on: user NAME signs in with bearer TOKEN (repeatable; environment: "
        "SESSIONLAB_USER_TOKEN='NAME=TOKEN NAME=TOKEN', or "
        'SESSIONLAB_USER_TOKENS=\'{"TOKEN": "NAME"}\')',
    )
    serve.add_argument(
        "--tolerant",
        action="store_true",
        default=None,
        help="accept unknown session ids like the described system (not strict)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--workers",
        type=int,
        help="processes per service (default 1); more than one runtime process needs "
        "--database-url on PostgreSQL (docs/scale-out.md)",
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        default=None,
        help="never change the store's schema: refuse a store behind this version, naming the "
        "`sessionlab migrate` command to run (default: upgrade it at start)",
    )
    serve.set_defaults(handler=_serve, serve_parser=serve)

    migrate = commands.add_parser(
        "migrate",
        help="upgrade the reference store's schema to this version's",
        description="Upgrade the reference runtime's store to this version's schema (Alembic "
        "revisions shipped with sessionlab), as `sessionlab serve` does at start unless given "
        "--no-migrate. A store made before migrations existed is recognised. Exit status: 0 "
        "upgraded or already current, 2 the store cannot be opened or upgraded.",
    )
    migrate.add_argument("--data-dir", type=Path, help="where the SQLite file lives")
    migrate.add_argument("--database-url", help="SQLAlchemy async URL instead of the SQLite file")
    migrate.set_defaults(handler=_migrate)

    verify = commands.add_parser(
        "verify",
        help="check a target against the contract, requirement by requirement",
        description="Run the conformance checks against a target and report per requirement ID. "
        "With no target option it starts the reference stack itself. Exit status: 0 conforms, "
        "1 a MUST requirement failed, 2 usage error, 3 the run itself failed (the target did "
        "not start, or the pre-flight found a part unreachable or a key refused).",
    )
    TargetOptions.add_to(verify)
    what = verify.add_argument_group("what to check")
    what.add_argument(
        "--profile", action="append", choices=PROFILES, help="profile to check (repeatable)"
    )
    what.add_argument("--only", action="append", metavar="ID", help="requirement id or prefix")
    what.add_argument("--deep", action="store_true", help="many more generated examples")
    what.add_argument(
        "--baseline", type=Path, help="YAML of known failures and flaky requirement IDs"
    )
    what.add_argument(
        "--rate",
        type=_positive_rate,
        metavar="N",
        help="at most N requests (and socket opens) a second, for a target that rate-limits "
        "(a 429 slows the run down by itself)",
    )
    out = verify.add_argument_group("reports")
    out.add_argument("--json", type=Path, help="write the JSON report here")
    out.add_argument("--junit-xml", type=Path, help="write JUnit XML (one case per requirement)")
    out.add_argument("--html", type=Path, help="write the HTML report here")
    out.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show each failed check's full traceback and any output held back during the run",
    )
    verify.set_defaults(handler=_verify)

    replay = commands.add_parser(
        "replay",
        help="send a failed requirement's recorded exchange again and show what comes back",
        description="Send the recorded exchange of a failed requirement's checks (from a report "
        "of `sessionlab verify --json`) to the same target or another, and print what comes "
        "back under what was recorded: HTTP requests as recorded, event streams read to their "
        "end, sockets opened with the recorded frames sent in order. Keys are read from "
        "SESSIONLAB_CLIENT_KEY, SESSIONLAB_INTERNAL_KEY and SESSIONLAB_USER_TOKEN (or the "
        "options), never from the report. Exit status: 0 sent again, 2 it cannot be (no "
        "report, an unknown ID, one that did not fail, no transcript, a key missing).",
    )
    replay.add_argument("report", type=Path, help="the JSON report of `sessionlab verify --json`")
    replay.add_argument("requirement", metavar="ID", help="the failed requirement to replay")
    elsewhere = replay.add_argument_group("target (default: the URLs of the report)")
    elsewhere.add_argument("--gateway-url", help="send what went to the gateway here instead")
    elsewhere.add_argument("--runtime-url", help="send what went to the runtime here instead")
    elsewhere.add_argument("--client-key", help="default: $SESSIONLAB_CLIENT_KEY")
    elsewhere.add_argument("--internal-key", help="default: $SESSIONLAB_INTERNAL_KEY")
    elsewhere.add_argument("--user-token", help="bearer token; default: $SESSIONLAB_USER_TOKEN")
    elsewhere.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds to wait for each answer or frame (default 10)",
    )
    replay.set_defaults(handler=_replay)

    run = commands.add_parser(
        "run",
        help="run test plans (scenario files) against a target",
        description="Run scenario files step by step against a target; with none named, the "
        "test plans shipped with sessionlab. Every file is validated first; a bad one is "
        "reported with its file, line and reason and nothing runs. SIGINT or SIGTERM stops and "
        "removes what the run launched, then exits 130 or 143. Exit status: 0 all passed or "
        "skipped, 1 a scenario failed, 2 bad input, 3 the run broke.",
    )
    run.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="scenario files or folders of them (default: the plans shipped with sessionlab)",
    )
    run.add_argument(
        "--only", action="append", metavar="ID", help="run only the plan with this id (repeatable)"
    )
    TargetOptions.add_to(run)
    run.add_argument(
        "--junit-xml", type=Path, help="write JUnit XML (one case per scenario and client model)"
    )
    run.add_argument("--json", type=Path, help="write the step-by-step results as JSON")
    run.add_argument(
        "--client",
        choices=["designed", "shipped", "both"],
        help="the IDE simulator's client model: designed (the design note's intent), shipped "
        "(the real IDE on the wire) or both (each plan once per model); default: the target "
        "file's `client:`, else designed",
    )
    run.set_defaults(handler=_run)

    smoke = commands.add_parser(
        "smoke",
        help="start the reference stack and smoke-check it end to end",
        description="Start the reference stack on free loopback ports and run a short end-to-end "
        "check through the gateway: create, list, a WebSocket turn, a switch, a restart.",
    )
    smoke.add_argument("--data-dir", type=Path, help="keep the store here (default: temporary)")
    smoke.set_defaults(handler=_smoke)

    schemas = commands.add_parser("schemas", help="write or check the contract's JSON Schemas")
    schemas.add_argument("--check", action="store_true", help="fail if the files are stale")
    schemas.add_argument("--dir", help="directory (default: the package's schemas/)")
    schemas.set_defaults(handler=_schemas)

    bench = commands.add_parser(
        "bench",
        help="measure the reference: a fixed load recipe, then its micro-ratios",
        description="Measure the reference in two parts, printed as ratios of one run. 1: a "
        "fixed recipe of `sessionlab load`, 200 simulated IDEs against the reference started "
        "as a process target, compared in alternating rounds with a second target (by default "
        "the reference again: its ratios show this machine's noise). 2: the reference's "
        "micro-ratios (gateway against the runtime directly, long against short histories, one "
        "worker process against two). Exit status: 0 no errors, 1 load operations failed, 2 "
        "usage error, 3 the target did not start.",
    )
    bench.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply both parts by this: the IDEs, ramp-up and duration of the load, the "
        "request counts of the micro-ratios (default 1; 0.05 for a quick look)",
    )
    bench.add_argument(
        "--compare",
        metavar="TARGET2",
        help="compare the reference with this target instead of with itself: a target file, a "
        "gateway URL, MODULE:CALLABLE or `reference` (in process)",
    )
    bench.add_argument("--json", type=Path, help="write both parts as JSON here")
    bench.add_argument("--html", type=Path, help="write the load part's page (tables and plots)")
    bench.set_defaults(handler=_bench)

    durability = commands.add_parser(
        "durability",
        help="run many IDEs under a fault schedule and check that nothing acknowledged is lost",
        description="N simulated IDEs create sessions, chat, switch and resume while a nemesis "
        "kills, pauses and restarts the runtime, restarts the gateway and cuts, resets, refuses "
        "and slows either hop; after healing, every history is read through the gateway and "
        "checked against what the IDEs were told (X-DUR-1, docs/durability.md). Needs a "
        "process or container target. Exit status: 0 no anomaly, 1 anomalies, 2 usage error or "
        "a target that cannot be faulted, 3 the target did not start.",
    )
    TargetOptions.add_to(durability)
    durability.add_argument("--ides", type=int, default=20, help="simulated IDEs (default 20)")
    durability.add_argument("--faults", type=int, default=20, help="faults (default 20)")
    durability.add_argument("--seed", type=int, help="the schedule's seed (default: random)")
    durability.add_argument(
        "--fault",
        action="append",
        metavar="NAME",
        help="only this fault, repeatable: kill, restart, pause, gateway_restart, "
        "cut@ide, reset@runtime, latency@ide, down@runtime ... (default: all the target allows)",
    )
    durability.add_argument(
        "--budget",
        type=_positive_seconds,
        metavar="SECONDS",
        help="no fault begins after this (default: twice the schedule's planned span)",
    )
    durability.add_argument("--json", type=Path, help="write the result as JSON")
    durability.add_argument("--junit-xml", type=Path, help="write JUnit XML")
    durability.add_argument("--html", type=Path, help="write an HTML report with the timeline")
    durability.set_defaults(handler=_durability)

    load = commands.add_parser(
        "load",
        help="load a target with many simulated IDEs and measure each flow",
        description="Run N simulated IDEs (the IDE simulator's create, chat, switch and restore "
        "flows) against a target from worker processes, with a ramp-up and think times, bounded "
        "by a duration and an operation count; print throughput and latency percentiles per "
        "flow. --compare measures a second target in the same run, in alternating rounds, and "
        "prints the ratios. Targets off this machine are refused without --allow-remote. Exit "
        "status: 0 no errors, 1 operations failed, 2 usage error, 3 the target did not start.",
    )
    TargetOptions.add_to(load)
    from sessionlab.load import add_load_options

    add_load_options(load)
    load.set_defaults(handler=_load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `serve` stops on a signal by itself; the commands that launch a target, in process or not,
    # stop and remove it first (exit status 130 or 143).
    if args.command in ("verify", "run", "smoke", "bench", "load", "durability"):
        from conformance.stopping import run_stoppably

        return run_stoppably(lambda: args.handler(args), f"sessionlab {args.command}")
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
