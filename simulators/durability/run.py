"""One durability run: a fault proxy before the gateway, the IDEs at work, the nemesis's schedule,
healing, the histories read back through the gateway, and the checker's verdict."""

import asyncio
import contextlib
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contract.routes import HISTORY, LIST_SESSIONS
from simulators.durability.checker import CheckedHistory, Histories, check_history
from simulators.durability.nemesis import (
    Controllable,
    FaultEvent,
    Nemesis,
    available_faults,
    controllable,
)
from simulators.durability.record import Operation, Record
from simulators.durability.schedule import Schedule, generate_schedule
from simulators.durability.timeline import timeline_svg
from simulators.durability.workload import WorkloadSettings, run_workload
from simulators.faultproxy import FaultProxy
from simulators.ide import IdeSettings
from simulators.ide.settings import TIMEOUT_SCALE
from simulators.services import Gateway

# Seconds faults are considered "around" an operation, either side of it.
AROUND = 1.0
# Reading back: how long the healed target may take to answer again, and how many reads of the
# histories at once.
READY_WITHIN = 30.0
READERS = 8


class NotControllable(Exception):
    """The target cannot suffer the faults durability is about; the message says why."""


@dataclass(frozen=True)
class DurabilitySettings:
    ides: int = 20
    faults: int = 20
    seed: int | None = None
    # A schedule given in full (a plan's), instead of one generated from the seed.
    schedule: Schedule | None = None
    # Only these fault names, when given (else every one the target can suffer).
    fault_names: tuple[str, ...] = ()
    gap: tuple[float, float] = (0.2, 0.8)
    hold: tuple[float, float] = (0.3, 1.2)
    # No fault begins later than this (seconds); None: the schedule's own span, doubled.
    budget: float | None = None
    # The workload goes on this long after the last fault is healed.
    settle: float = 1.5


@dataclass
class DurabilityResult:
    settings: DurabilitySettings
    schedule: Schedule
    events: list[FaultEvent]
    not_run: int
    operations: list[Operation]
    checked: CheckedHistory
    duration: float
    listed: int
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.checked.passed

    def faults_around(self, op: Operation) -> list[FaultEvent]:
        return [
            event
            for event in self.events
            if event.began <= op.end + AROUND and event.ended >= op.start - AROUND
        ]

    def op_counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for op in self.operations:
            row = table.setdefault(op.kind, {"ok": 0, "fail": 0, "unknown": 0})
            row[op.outcome] += 1
        return table

    def anomaly_details(self) -> list[dict[str, Any]]:
        details = []
        for anomaly in self.checked.anomalies:
            op = self.operations[anomaly.operation] if anomaly.operation is not None else None
            entry = anomaly.as_dict()
            if op is not None:
                entry["op"] = op.describe()
                entry["faults_around"] = [
                    e.fault.describe().strip() for e in self.faults_around(op)
                ]
                entry["transcript"] = op.trace
            details.append(entry)
        return details

    def svg(self) -> str:
        anomalous = {a.operation for a in self.checked.anomalies if a.operation is not None}
        return timeline_svg(
            [op.as_dict() for op in self.operations],
            [event.as_dict() for event in self.events],
            anomalous,
        )

    def replay_line(self) -> str:
        if self.schedule.seed is None:
            return "replay: run the same plan again"
        return (
            f"replay: sessionlab durability --seed {self.schedule.seed} "
            f"--faults {len(self.schedule.faults)} --ides {self.settings.ides} (same target)"
        )

    def as_dict(self) -> dict[str, Any]:
        anomalous = {a.operation for a in self.checked.anomalies if a.operation is not None}
        return {
            "passed": self.passed,
            "seed": self.schedule.seed,
            "ides": self.settings.ides,
            "duration": round(self.duration, 3),
            "schedule": self.schedule.as_dict(),
            "faults": [event.as_dict() for event in self.events],
            "faults_not_run": self.not_run,
            "operations": self.op_counts(),
            "anomaly_counts": self.checked.counts(),
            "anomalies": self.anomaly_details(),
            "unknown": self.checked.unknown_counts(),
            "refused_but_stored": len(self.checked.refused_but_stored),
            "sessions_read": self.checked.sessions_read,
            "sessions_listed": self.listed,
            "notes": self.notes,
            "replay": self.replay_line(),
            # Every operation on the time axis, without the transcripts (those of anomalies
            # are under `anomalies`).
            "timeline": [
                {
                    **{k: v for k, v in op.as_dict().items() if k != "trace"},
                    "anomaly": op.index in anomalous,
                }
                for op in self.operations
            ],
        }

    def render(self) -> str:
        ops = "; ".join(
            f"{kind}: " + ", ".join(f"{n} {outcome}" for outcome, n in row.items())
            for kind, row in self.op_counts().items()
        )
        unknown = ", ".join(
            f"{n} {verdict}" for verdict, n in self.checked.unknown_counts().items()
        )
        lines = [
            f"durability: {'PASSED' if self.passed else 'FAILED'} - {self.checked.summary()}",
            f"  {self.settings.ides} IDEs, {len(self.events)} faults applied"
            + (f" ({self.not_run} not run: past the budget)" if self.not_run else "")
            + f", {self.duration:.1f} s",
            f"  operations: {ops}",
            f"  unknown operations: {unknown or 'none'}; refused turns stored all the same: "
            f"{len(self.checked.refused_but_stored)}",
            f"  {self.replay_line()}",
        ]
        for entry in self.anomaly_details()[:20]:
            lines.append(f"  {entry['kind'].upper()}: {entry['what']}")
            if "op" in entry:
                lines.append(f"    {entry['op']}")
                lines.append(f"    faults around it: {', '.join(entry['faults_around']) or 'none'}")
                lines += [f"    | {line}" for line in entry["transcript"][-6:]]
        if len(self.checked.anomalies) > 20:
            lines.append(f"  ... {len(self.checked.anomalies) - 20} more anomalies in the report")
        return "\n".join(lines)


def plan_schedule(target: Controllable, settings: DurabilitySettings) -> Schedule:
    if settings.schedule is not None:
        return settings.schedule
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
    names = list(settings.fault_names) or available_faults(target)
    return generate_schedule(seed, settings.faults, names, settings.gap, settings.hold)


async def _ready(http: httpx.AsyncClient) -> None:
    """The healed target answers `GET /sessions` again (a restarted service takes a moment)."""
    deadline = time.monotonic() + READY_WITHIN * TIMEOUT_SCALE
    while True:
        try:
            if (await http.get(LIST_SESSIONS.path())).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.3)


async def _read_back(
    http: httpx.AsyncClient, session_ids: set[str]
) -> tuple[set[str], dict[str, list[dict[str, Any]] | None]]:
    await _ready(http)
    try:
        listed_body = (await http.get(LIST_SESSIONS.path())).json()
    except (httpx.HTTPError, ValueError):
        # A target that did not come back lists nothing: every acknowledged create is lost.
        listed_body = {}
    sessions = listed_body.get("sessions") if isinstance(listed_body, dict) else None
    listed = {
        info["session_id"]
        for info in (sessions if isinstance(sessions, list) else [])
        if isinstance(info, dict) and isinstance(info.get("session_id"), str)
    }
    gate = asyncio.Semaphore(READERS)

    async def read(session_id: str) -> tuple[str, list[dict[str, Any]] | None]:
        async with gate:
            for attempt in range(3):
                try:
                    response = await http.get(HISTORY.path(session_id=session_id))
                except httpx.HTTPError:
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                if response.status_code == 200:
                    try:
                        messages = response.json().get("messages")
                    except (ValueError, AttributeError):
                        return session_id, None
                    return session_id, messages if isinstance(messages, list) else []
                if response.status_code < 500:
                    return session_id, None
                await asyncio.sleep(0.5 * (attempt + 1))
            return session_id, None

    read_back = await asyncio.gather(*(read(s) for s in sorted(session_ids)))
    return listed, dict(read_back)


def _gateway_host(endpoints: Gateway) -> tuple[str, int, str]:
    host_port, _, base_path = endpoints.gateway_url.partition("//")[2].partition("/")
    host, _, port = host_port.rpartition(":")
    return host.strip("[]"), int(port), base_path


async def run_durability(
    target: Controllable,
    endpoints: Gateway,
    settings: DurabilitySettings,
    *,
    profiles: frozenset[str] = frozenset(),
    turn_timeout: float = 10.0,
    announce: Any = None,
) -> DurabilityResult:
    """NotControllable when the target cannot be faulted. `announce` (a callable taking a
    line) hears the schedule before it runs."""
    reason = controllable(target)
    if reason is not None:
        raise NotControllable(reason)
    schedule = plan_schedule(target, settings)
    if announce is not None:
        announce(schedule.render())
    host, port, base_path = _gateway_host(endpoints)
    record = Record()
    budget = settings.budget if settings.budget is not None else schedule.span * 2 + 10
    workload = WorkloadSettings(
        ides=settings.ides,
        seed=schedule.seed or 0,
        run=secrets.token_hex(3),
        turn_timeout=turn_timeout * TIMEOUT_SCALE,
        idempotent="idempotent" in profiles,
    )
    stop = asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="sessionlab-durability-") as scratch:
        async with (
            FaultProxy(host, port) as proxy,
            httpx.AsyncClient(
                base_url=endpoints.gateway_url, headers=endpoints.client_headers(), timeout=15
            ) as http,
        ):
            ide_url = proxy.url() + (f"/{base_path}" if base_path else "")
            ide_settings = IdeSettings(
                gateway_url=ide_url,
                client_key=endpoints.client_key,
                headers=endpoints.socket_headers(),
                request_timeout=5.0,
                connect_timeout=3.0,
                turn_timeout=turn_timeout,
                idempotent=workload.idempotent,
            )
            nemesis = Nemesis(target, proxy, record.now, budget)
            working = asyncio.create_task(
                run_workload(workload, ide_settings, Path(scratch), record, stop)
            )
            try:
                await nemesis.run(schedule)
            finally:
                await nemesis.heal()
            await asyncio.sleep(settings.settle)
            stop.set()
            try:
                async with asyncio.timeout(workload.turn_timeout + 20):
                    await working
            except TimeoutError:
                working.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await working
            named = {op.session_id for op in record.operations if op.session_id is not None}
            named = {
                s
                for s in named
                if any(
                    op.session_id == s and (op.kind == "turn" or op.outcome == "ok")
                    for op in record.operations
                )
            }
            listed, histories = await _read_back(http, named)
    read: Histories = histories
    checked = check_history(record.operations, read, listed)
    return DurabilityResult(
        settings=settings,
        schedule=schedule,
        events=nemesis.events,
        not_run=len(nemesis.not_run),
        operations=record.operations,
        checked=checked,
        duration=record.now(),
        listed=len(listed),
    )
