"""Durability under fault schedules: many simulated IDEs at work while a nemesis runs a schedule of
faults against the target, then a checker over the whole recorded history.

`record` holds what each IDE did and how it ended (`ok`, `fail`, `unknown`); `schedule` is the
nemesis's plan, pure and replayable from its seed; `nemesis` carries it out on a target; `workload`
drives the IDEs through the simulator's real flows; `checker` compares the record with the
histories read back after healing; `timeline` draws operations and faults on one time axis;
`run` puts them together. See docs/durability.md.
"""

from simulators.durability.checker import Anomaly, CheckedHistory, check_history
from simulators.durability.record import Operation, Record
from simulators.durability.run import DurabilityResult, DurabilitySettings, run_durability
from simulators.durability.schedule import Fault, Schedule, generate_schedule

__all__ = [
    "Anomaly",
    "CheckedHistory",
    "DurabilityResult",
    "DurabilitySettings",
    "Fault",
    "Operation",
    "Record",
    "Schedule",
    "check_history",
    "generate_schedule",
    "run_durability",
]
