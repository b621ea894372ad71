"""CPU time, to turn a run's throughput into figures per core: the load generator's own (each
worker's rusage) and, for targets whose processes sessionlab launched, the target's (every
process of each service's process group, read from /proc)."""

import os
import resource
from collections.abc import Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _group_cpu_seconds(group: int) -> float:
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        # The command may hold spaces and parentheses: the fields start after the last ")".
        fields = text[text.rindex(")") + 2 :].split()
        # fields[2] is the process group; [11] and [12] utime and stime in clock ticks.
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def groups_cpu_seconds(groups: Iterable[int | None]) -> float | None:
    """CPU seconds every process of these process groups has used so far; None when a group is
    not known (a service not running) or /proc cannot be read."""
    known = list(groups)
    if None in known or not Path("/proc/self/stat").exists():
        return None
    return sum(_group_cpu_seconds(group) for group in known if group is not None)
