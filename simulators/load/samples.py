"""What a run measured, per target: every operation's latency and time, errors by cause.

Workers send Outcomes in batches; the run folds them into one Tally per target. Percentiles are
exact (every latency is kept: a float per operation, a few MB for the longest runs one machine
makes).
"""

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from simulators.load.causes import cause_of
from simulators.load.flows import FLOWS, Outcome


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (share in 0..1); nan for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass
class ErrorGroup:
    cause: str
    count: int = 0
    example: str = ""
    trace: tuple[str, ...] = ()
    first_at: float = 0.0


@dataclass
class FlowSummary:
    flow: str
    count: int
    errors: int
    throughput: float  # operations that succeeded, per second of measured time
    p50: float  # seconds
    p90: float
    p99: float
    max: float

    def as_json(self) -> dict[str, Any]:
        def ms(value: float) -> float | None:
            return None if math.isnan(value) else round(value * 1000, 3)

        return {
            "flow": self.flow,
            "count": self.count,
            "errors": self.errors,
            "throughput_per_s": round(self.throughput, 3),
            "p50_ms": ms(self.p50),
            "p90_ms": ms(self.p90),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        }


@dataclass
class Tally:
    """Everything measured against one target."""

    label: str
    # (seconds since the origin of its round, flow, latency in seconds); errors have no latency.
    points: list[tuple[float, str, float]] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {f: [] for f in FLOWS})
    errors_by_flow: Counter[str] = field(default_factory=Counter)
    errors: dict[str, ErrorGroup] = field(default_factory=dict)
    # Seconds the target was under load (the sum of its rounds).
    measured: float = 0.0
    # Where each round began on the plot's time axis, so rounds follow one another.
    offset: float = 0.0
    # CPU seconds spent by the load generator's workers, and by the target when it can be read
    # (None: it cannot), over this target's rounds.
    generator_cpu: float = 0.0
    target_cpu: float | None = None

    def add(self, outcome: Outcome) -> None:
        if outcome.error is None:
            self.latencies.setdefault(outcome.flow, []).append(outcome.latency)
            self.points.append((self.offset + outcome.at, outcome.flow, outcome.latency))
            return
        self.errors_by_flow[outcome.flow] += 1
        cause = cause_of(outcome.flow, outcome.error)
        group = self.errors.get(cause)
        if group is None:
            group = self.errors[cause] = ErrorGroup(
                cause, 0, f"{outcome.flow}: {outcome.error}", outcome.trace, outcome.at
            )
        group.count += 1

    @property
    def operations(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors_by_flow.values())

    def summary(self, flow: str) -> FlowSummary:
        values = self.latencies.get(flow, [])
        return FlowSummary(
            flow=flow,
            count=len(values),
            errors=self.errors_by_flow[flow],
            throughput=len(values) / self.measured if self.measured > 0 else 0.0,
            p50=percentile(values, 0.50),
            p90=percentile(values, 0.90),
            p99=percentile(values, 0.99),
            max=max(values) if values else math.nan,
        )

    def summaries(self) -> list[FlowSummary]:
        return [self.summary(flow) for flow in FLOWS]

    def buckets(self, width: float) -> list[tuple[float, dict[str, list[float]]]]:
        """The latencies per flow in consecutive time buckets of `width` seconds."""
        if not self.points:
            return []
        end = max(at for at, _, _ in self.points)
        count = int(end // width) + 1
        out: list[tuple[float, dict[str, list[float]]]] = [
            (index * width, {}) for index in range(count)
        ]
        for at, flow, latency in self.points:
            out[int(at // width)][1].setdefault(flow, []).append(latency)
        return out
