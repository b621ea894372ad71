"""What one load run does: how many IDEs, how fast they arrive, how long or how much they work."""

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Not at run time: the command line reads this module on every start, the IDE never.
    from simulators.ide.settings import Client

# Every run is bounded twice: by its duration (at most MAX_DURATION) and by the IDEs it starts
# (at most MAX_IDES on this machine; more belong on Locust workers on several machines).
MAX_DURATION = 3600.0
MAX_IDES = 20_000
DEFAULT_DURATION = 30.0


class PlanError(ValueError):
    """The plan cannot be run; the message names the option and why."""


@dataclass(frozen=True)
class LoadPlan:
    ides: int = 50
    # Seconds over which the IDEs start, evenly spread; 0 starts them all at once.
    ramp_up: float = 5.0
    # Seconds the IDEs work after the ramp-up. None with `operations` set: until those are done
    # (still never past MAX_DURATION).
    duration: float | None = DEFAULT_DURATION
    # Flow operations in all (create, chat, switch, restore each count one), shared by the IDEs.
    operations: int | None = None
    # Seconds a simulated user waits between two operations, drawn evenly from this range.
    think_min: float = 0.5
    think_max: float = 1.5
    # Load generator processes; default one per core.
    workers: int = 0
    client: "Client" = "designed"
    # Seconds one operation may take before it counts as an error (its latency is still kept).
    step_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.ides <= MAX_IDES:
            raise PlanError(f"--ides {self.ides}: from 1 to {MAX_IDES} on one machine")
        if self.ramp_up < 0:
            raise PlanError(f"--ramp-up {self.ramp_up:g}: not negative")
        if self.duration is not None and not 0 < self.duration <= MAX_DURATION:
            raise PlanError(f"--duration {self.duration:g}: above 0 and at most {MAX_DURATION:g} s")
        if self.operations is not None and self.operations < 1:
            raise PlanError(f"--operations {self.operations}: at least 1")
        if not 0 <= self.think_min <= self.think_max:
            raise PlanError(
                f"--think {self.think_min:g}-{self.think_max:g}: MIN-MAX with 0 <= MIN <= MAX"
            )
        if self.workers < 0:
            raise PlanError(f"--workers {self.workers}: not negative (0: one per core)")
        if self.step_timeout <= 0:
            raise PlanError(f"--step-timeout {self.step_timeout:g}: above 0")

    @property
    def worker_count(self) -> int:
        wanted = self.workers or os.cpu_count() or 1
        return max(1, min(wanted, self.ides))

    @property
    def time_limit(self) -> float:
        """Seconds after the ramp-up when the IDEs stop, whatever is left to do."""
        return self.duration if self.duration is not None else MAX_DURATION

    def operations_of(self, ide: int) -> int | None:
        """IDE number `ide`'s share of the operation count (None: no count)."""
        if self.operations is None:
            return None
        share, extra = divmod(self.operations, self.ides)
        return share + (1 if ide < extra else 0)

    def start_delay(self, ide: int) -> float:
        return self.ramp_up * ide / self.ides
