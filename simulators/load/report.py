"""The end of a load run: a table on the console, a JSON report, an HTML page with plots."""

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table

from simulators.load.flows import FLOWS
from simulators.load.samples import Tally, percentile

if TYPE_CHECKING:
    from simulators.load.run import Measured

# Trace lines shown under each cause on the console (the JSON and HTML keep all they got).
TRACE_ON_CONSOLE = 6


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:.1f}"


def ratio(b: float, a: float) -> float:
    if a <= 0 or math.isnan(a) or math.isnan(b):
        return math.nan
    return b / a


def _ratio_text(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def describe_plan(measured: "Measured") -> str:
    plan = measured.plan
    bound = f"{plan.duration:g} s" if plan.duration is not None else "no time set"
    if plan.operations is not None:
        bound += f", at most {plan.operations} operations"
    rounds = f", {measured.rounds} alternating rounds each" if len(measured.tallies) > 1 else ""
    return (
        f"{plan.ides} IDEs ({plan.client}), ramp-up {plan.ramp_up:g} s, {bound}{rounds}, think "
        f"{plan.think_min:g}-{plan.think_max:g} s, {plan.worker_count} load processes"
    )


def print_report(measured: "Measured", out: TextIO) -> None:
    console = Console(file=out, highlight=False, width=max(100, Console(file=out).width))
    console.print(f"sessionlab load: {describe_plan(measured)}")
    for tally, url in zip(measured.tallies, measured.urls, strict=True):
        table = Table(title=f"{tally.label} at {url} ({tally.measured:.1f} s measured)")
        for column in ("flow", "ops", "errors", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms"):
            table.add_column(column, justify="left" if column == "flow" else "right")
        for row in tally.summaries():
            table.add_row(
                row.flow,
                str(row.count),
                str(row.errors),
                f"{row.throughput:.2f}",
                _ms(row.p50),
                _ms(row.p90),
                _ms(row.p99),
                _ms(row.max),
            )
        console.print(table)
        console.print(cpu_line(tally), markup=False)
    if len(measured.tallies) == 2:
        console.print(_comparison_table(*measured.tallies))
    for tally in measured.tallies:
        if not tally.errors:
            continue
        console.print(f"[bold]{tally.label}: {tally.error_count} errors, by cause[/bold]")
        for group in sorted(tally.errors.values(), key=lambda g: -g.count):
            console.print(f"  {group.count:>6} x {group.cause}", markup=False)
            console.print(f"         e.g. {group.example}", markup=False)
            for line in group.trace[-TRACE_ON_CONSOLE:]:
                console.print(f"           {line}", markup=False)
    total = sum(tally.operations for tally in measured.tallies)
    verdict = "no errors" if not measured.errors else f"{measured.errors} errors: exit status 1"
    console.print(f"{total} operations in {measured.wall:.1f} s, {verdict}")


def per_core(tally: Tally) -> dict[str, float | None]:
    """CPU milliseconds per operation, and so operations per second one core sustains, of the load
    generator and (when it can be read) of the target."""
    operations = tally.operations + tally.error_count

    def figures(cpu: float | None) -> tuple[float | None, float | None]:
        if cpu is None or operations == 0 or cpu <= 0:
            return None, None
        return round(cpu / operations * 1000, 3), round(operations / cpu, 1)

    generator_ms, generator_rate = figures(tally.generator_cpu)
    target_ms, target_rate = figures(tally.target_cpu)
    return {
        "generator_cpu_s": round(tally.generator_cpu, 3),
        "generator_cpu_ms_per_operation": generator_ms,
        "generator_operations_per_core_s": generator_rate,
        "target_cpu_s": None if tally.target_cpu is None else round(tally.target_cpu, 3),
        "target_cpu_ms_per_operation": target_ms,
        "target_operations_per_core_s": target_rate,
    }


def cpu_line(tally: Tally) -> str:
    figures = per_core(tally)
    line = (
        f"CPU: load generator {figures['generator_cpu_s']} s, "
        f"{figures['generator_cpu_ms_per_operation']} ms per operation "
        f"({figures['generator_operations_per_core_s']} operations/s per core)"
    )
    if figures["target_cpu_s"] is None:
        return line + "; target: not readable (only for process targets)"
    return line + (
        f"; target {figures['target_cpu_s']} s, {figures['target_cpu_ms_per_operation']} ms per "
        f"operation ({figures['target_operations_per_core_s']} operations/s per core)"
    )


def _comparison_table(a: Tally, b: Tally) -> Table:
    table = Table(title=f"{b.label} against {a.label} (ratio B/A: throughput above 1 is faster)")
    for column in ("flow", "ops/s A", "ops/s B", "ratio", "p50 A", "p50 B", "ratio"):
        table.add_column(column, justify="left" if column == "flow" else "right")
    table.add_column("p99 A", justify="right")
    table.add_column("p99 B", justify="right")
    table.add_column("ratio", justify="right")
    for left, right in zip(a.summaries(), b.summaries(), strict=True):
        table.add_row(
            left.flow,
            f"{left.throughput:.2f}",
            f"{right.throughput:.2f}",
            _ratio_text(ratio(right.throughput, left.throughput)),
            _ms(left.p50),
            _ms(right.p50),
            _ratio_text(ratio(right.p50, left.p50)),
            _ms(left.p99),
            _ms(right.p99),
            _ratio_text(ratio(right.p99, left.p99)),
        )
    return table


def comparison(a: Tally, b: Tally) -> list[dict[str, Any]]:
    def number(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 4)

    rows = []
    for left, right in zip(a.summaries(), b.summaries(), strict=True):
        rows.append(
            {
                "flow": left.flow,
                "throughput_ratio": number(ratio(right.throughput, left.throughput)),
                "p50_ratio": number(ratio(right.p50, left.p50)),
                "p99_ratio": number(ratio(right.p99, left.p99)),
            }
        )
    return rows


# Plots: seconds per bucket of the time axis.
BUCKET = 2.0


def _series(tally: Tally) -> dict[str, Any]:
    buckets = tally.buckets(BUCKET)
    series: dict[str, Any] = {"t": [start for start, _ in buckets]}
    for flow in FLOWS:
        series[flow] = {
            "per_s": [len(by_flow.get(flow, [])) / BUCKET for _, by_flow in buckets],
            "p50_ms": [_bucket_ms(by_flow.get(flow, []), 0.5) for _, by_flow in buckets],
            "p99_ms": [_bucket_ms(by_flow.get(flow, []), 0.99) for _, by_flow in buckets],
        }
    return series


def _bucket_ms(values: list[float], share: float) -> float | None:
    return None if not values else round(percentile(values, share) * 1000, 3)


def as_json(measured: "Measured") -> dict[str, Any]:
    plan = measured.plan
    report: dict[str, Any] = {
        "started_at": datetime.fromtimestamp(measured.started_at, UTC).isoformat(),
        "wall_s": round(measured.wall, 3),
        "plan": {
            "ides": plan.ides,
            "ramp_up_s": plan.ramp_up,
            "duration_s": plan.duration,
            "operations": plan.operations,
            "think_s": [plan.think_min, plan.think_max],
            "workers": plan.worker_count,
            "client": plan.client,
            "step_timeout_s": plan.step_timeout,
            "rounds_per_target": measured.rounds,
        },
        "targets": [
            {
                "label": tally.label,
                "name": name,
                "gateway_url": url,
                "measured_s": round(tally.measured, 3),
                "operations": tally.operations,
                "errors": tally.error_count,
                "flows": [summary.as_json() for summary in tally.summaries()],
                "cpu": per_core(tally),
                "errors_by_cause": [
                    {
                        "cause": group.cause,
                        "count": group.count,
                        "example": group.example,
                        "trace": list(group.trace),
                    }
                    for group in sorted(tally.errors.values(), key=lambda g: -g.count)
                ],
                "series": {"bucket_s": BUCKET, **_series(tally)},
            }
            for tally, name, url in zip(
                measured.tallies, measured.names, measured.urls, strict=True
            )
        ],
        "errors": measured.errors,
    }
    if len(measured.tallies) == 2:
        report["comparison"] = comparison(*measured.tallies)
    return report


def write_json(measured: "Measured", path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_json(measured), indent=2) + "\n", encoding="utf-8")


def write_html(measured: "Measured", path: Path) -> None:
    from simulators.load.html import render

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(as_json(measured), describe_plan(measured)), encoding="utf-8")
