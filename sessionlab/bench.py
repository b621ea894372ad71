"""`sessionlab bench`: a fixed recipe of `sessionlab load` against the reference, then the
reference's own micro-ratios.

1. Simulated IDEs against the reference started as a process target (reference-process.yaml,
   shipped next to this module), compared with a second target in alternating rounds: by default
   the same reference again, so that its ratios, which would be 1.00 on a quiet machine, show how
   much this machine's noise moves them.
2. The micro-ratios that need no IDE (reference/bench.py): gateway against the runtime directly,
   a long history against a short one, one worker process against two.

`--scale` scales both: the IDEs, the ramp-up and the duration of the first, the request counts of
the second. docs/load.md, "`sessionlab bench`", says why it is built this way.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from contract.exit_codes import ExitCode
from simulators.load.plan import LoadPlan, PlanError

if TYPE_CHECKING:
    from simulators.load.run import Measured

TARGET = Path(__file__).with_name("reference-process.yaml")
# The recipe at --scale 1: 200 IDEs arriving over 10 s, then 60 s of work per target, in rounds
# A B B A; the users think 0.5-1.5 s between operations (the load tool's default pace).
IDES = 200
RAMP_UP = 10.0
DURATION = 60.0
ROUNDS = 2
THINK = (0.5, 1.5)
# However small the scale, enough IDEs that each enters the cycle at one of its four places, and
# seconds for a few operations of each in every round.
MIN_IDES = 4
MIN_DURATION = 3.0


@dataclass(frozen=True)
class Recipe:
    plan: LoadPlan
    compare: str
    rounds: int = ROUNDS

    def command(self) -> str:
        """The `sessionlab load` command that runs the same thing."""
        plan = self.plan
        return (
            f"sessionlab load --target {TARGET} --compare {self.compare} --ides {plan.ides} "
            f"--ramp-up {plan.ramp_up:g} --duration {plan.duration:g} --rounds {self.rounds} "
            f"--think {plan.think_min:g}-{plan.think_max:g}"
        )


def recipe(scale: float = 1.0, compare: str | None = None) -> Recipe:
    """The load plan at this scale; PlanError when it is out of the load tool's bounds."""
    if not scale > 0:
        raise PlanError(f"--scale {scale:g}: above 0")
    plan = LoadPlan(
        ides=max(MIN_IDES, round(IDES * scale)),
        ramp_up=round(RAMP_UP * scale, 2),
        duration=max(MIN_DURATION, round(DURATION * scale, 2)),
        think_min=THINK[0],
        think_max=THINK[1],
    )
    return Recipe(plan, compare or str(TARGET))


def bench_command(
    scale: float = 1.0,
    compare: str | None = None,
    json_path: Path | None = None,
    html_path: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Both parts, in order. Exit status: the load part's (0, 1 when operations failed, 2 a plan
    or target it cannot run, 3 a target that did not start); the second part runs after 0 or 1."""
    from conformance.target_options import TargetOptions
    from sessionlab.load_run import LoadOptions, run_load_measured

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        chosen = recipe(scale, compare)
    except PlanError as exc:
        print(f"sessionlab bench: {exc}", file=err)
        return ExitCode.BAD_INPUT
    itself = compare is None
    against = "itself" if itself else compare
    print(
        f"sessionlab bench, 1 of 2: simulated IDEs against the reference (a process target), "
        f"compared with {against} in alternating rounds, as\n  {chosen.command()}",
        file=out,
        flush=True,
    )
    code, measured = run_load_measured(
        LoadOptions(
            target=TargetOptions(target_file=str(TARGET)),
            plan=chosen.plan,
            compare=chosen.compare,
            rounds=chosen.rounds,
            html_path=html_path,
        ),
        out,
        err,
    )
    if measured is None:
        return code
    if itself:
        print(
            "B is the same reference as A: how far its ratios are from 1.00 is this machine's "
            "noise at this scale, not a difference between them.",
            file=out,
        )
    print("\nsessionlab bench, 2 of 2: micro-ratios of the reference, no IDE", file=out, flush=True)
    from reference.bench import run_bench

    micro = run_bench(scale, out)
    if json_path is not None:
        _write_json(json_path, scale, chosen, measured, micro.as_json())
        print(f"JSON report: {json_path}", file=out)
    return code


def _write_json(
    path: Path, scale: float, chosen: Recipe, measured: "Measured", micro: dict[str, Any]
) -> None:
    from simulators.load.report import as_json

    report = {
        "scale": scale,
        "load": {"command": chosen.command(), **as_json(measured)},
        "micro_ratios": micro,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
