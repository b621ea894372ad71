"""The options of `sessionlab load`, and the command itself (registered by sessionlab.cli).

Read on every start of the command line to build its parser: what runs a load is imported only
when one runs (sessionlab.load_run).
"""

import argparse
from pathlib import Path

from contract.exit_codes import ExitCode
from simulators.load.plan import DEFAULT_DURATION, MAX_DURATION, MAX_IDES, LoadPlan, PlanError


def _think(value: str) -> tuple[float, float]:
    low, _, high = value.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seconds as MIN-MAX or one number, not {value!r}"
        ) from None
    return pair


def add_load_options(parser: argparse.ArgumentParser) -> None:
    load = parser.add_argument_group("load")
    load.add_argument(
        "--ides",
        type=int,
        default=50,
        metavar="N",
        help=f"simulated IDEs (default 50, at most {MAX_IDES})",
    )
    load.add_argument(
        "--ramp-up",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds over which the IDEs start, evenly (default 5)",
    )
    load.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help=f"seconds the IDEs work after the ramp-up (default {DEFAULT_DURATION:g} unless "
        f"--operations is given; at most {MAX_DURATION:g})",
    )
    load.add_argument(
        "--operations",
        type=int,
        metavar="N",
        help="stop after N operations in all (create, chat, switch, restore count one each)",
    )
    load.add_argument(
        "--think",
        type=_think,
        default=(0.5, 1.5),
        metavar="MIN-MAX",
        help="seconds a user waits between operations, drawn evenly (default 0.5-1.5)",
    )
    load.add_argument(
        "--workers", type=int, default=0, metavar="N", help="load processes (default: one per core)"
    )
    load.add_argument(
        "--client",
        choices=["designed", "shipped"],
        default="designed",
        help="the IDE simulator's client model (default designed)",
    )
    load.add_argument(
        "--step-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds one operation may take before it counts as an error (default 30)",
    )
    load.add_argument(
        "--compare",
        metavar="TARGET2",
        help="measure a second target in the same run, in alternating rounds, and print the "
        "ratios: a target file, a gateway URL, MODULE:CALLABLE or `reference`",
    )
    load.add_argument(
        "--rounds",
        type=int,
        default=4,
        metavar="N",
        help="with --compare: rounds per target (default 4), the duration shared among them",
    )
    load.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a target that is not on this machine (only with its owner's consent)",
    )
    out = parser.add_argument_group("reports")
    out.add_argument("--json", type=Path, help="write the JSON report here")
    out.add_argument("--html", type=Path, help="write the HTML page (tables and plots) here")


def load_command(args: argparse.Namespace) -> int:
    import sys

    from conformance.target_options import TargetOptions
    from sessionlab.load_run import LoadOptions, run_load

    try:
        plan = LoadPlan(
            ides=args.ides,
            ramp_up=args.ramp_up,
            duration=args.duration
            if args.duration is not None or args.operations is not None
            else DEFAULT_DURATION,
            operations=args.operations,
            think_min=args.think[0],
            think_max=args.think[1],
            workers=args.workers,
            client=args.client,
            step_timeout=args.step_timeout,
        )
        if args.rounds < 1:
            raise PlanError(f"--rounds {args.rounds}: at least 1")
    except PlanError as exc:
        print(f"sessionlab load: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    return run_load(
        LoadOptions(
            target=TargetOptions.from_args(args),
            plan=plan,
            compare=args.compare,
            rounds=args.rounds,
            json_path=args.json,
            html_path=args.html,
            allow_remote=args.allow_remote,
        )
    )
