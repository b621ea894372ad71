"""The nemesis: carries out a schedule on a controllable target and notes when each fault really
began and was healed (a restart takes what it takes), on the record's clock."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from simulators.durability.schedule import Fault, Hop, Schedule
from simulators.faultproxy import FaultProxy, Latency
from simulators.services import Capability, Service


class Controllable(Protocol):
    """What the nemesis needs of a target (conformance's `TargetRunner` is one)."""

    def supports(self, service: Service, capability: Capability) -> bool: ...

    @property
    def has_runtime_hop(self) -> bool: ...

    async def kill_service(self, service: Service) -> None: ...
    async def start_service(self, service: Service) -> None: ...
    async def restart_service(self, service: Service) -> None: ...
    async def pause_service(self, service: Service) -> None: ...
    async def resume_service(self, service: Service) -> None: ...
    async def on_runtime_hop(self, action: Callable[[FaultProxy], Awaitable[None]]) -> None: ...


def available_faults(target: Controllable) -> list[str]:
    """The fault names this target can suffer; the IDE-to-gateway hop is the run's own proxy."""
    names = []
    if target.supports("runtime", Capability.KILL):
        names.append("kill")
    if target.supports("runtime", Capability.STOP):
        names.append("restart")
    if target.supports("runtime", Capability.PAUSE):
        names.append("pause")
    if target.supports("gateway", Capability.STOP):
        names.append("gateway_restart")
    hops = ["ide", "runtime"] if target.has_runtime_hop else ["ide"]
    names += [f"{kind}@{hop}" for kind in ("cut", "reset", "latency", "down") for hop in hops]
    return names


def controllable(target: Controllable) -> str | None:
    """None when the target's runtime can be restarted (the fault durability is about);
    otherwise why not."""
    if target.supports("runtime", Capability.STOP) or target.supports("runtime", Capability.KILL):
        return None
    return "the target offers no control of its runtime (restart or kill): a durability run "
    "needs a `process` or `container` target"


@dataclass
class FaultEvent:
    fault: Fault
    began: float
    ended: float
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.fault.name,
            "describe": self.fault.describe().split("s ", 1)[-1],
            "planned_at": self.fault.at,
            "began": round(self.began, 3),
            "ended": round(self.ended, 3),
            "error": self.error,
        }


class Nemesis:
    def __init__(
        self,
        target: Controllable,
        ide_hop: FaultProxy,
        clock: Callable[[], float],
        budget: float,
    ) -> None:
        self.target = target
        self.ide_hop = ide_hop
        self.clock = clock
        # No fault begins after this many seconds of the run: the schedule is bounded in time.
        self.budget = budget
        self.events: list[FaultEvent] = []
        self.not_run: list[Fault] = []

    async def run(self, schedule: Schedule) -> None:
        for position, fault in enumerate(schedule.faults):
            if fault.at > self.budget or self.clock() > self.budget:
                self.not_run = list(schedule.faults[position:])
                return
            wait = fault.at - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            began = self.clock()
            error = ""
            try:
                await self._apply(fault)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                await self.heal()
            self.events.append(FaultEvent(fault, began, self.clock(), error))

    async def _on_hop(self, hop: Hop, action: Callable[[FaultProxy], Awaitable[None]]) -> None:
        if hop == "ide":
            await action(self.ide_hop)
        else:
            await self.target.on_runtime_hop(action)

    async def _apply(self, fault: Fault) -> None:
        runtime: Service = "runtime"
        match fault.kind:
            case "kill":
                await self.target.kill_service(runtime)
                await asyncio.sleep(fault.hold)
                await self.target.start_service(runtime)
            case "restart":
                await self.target.restart_service(runtime)
            case "pause":
                await self.target.pause_service(runtime)
                try:
                    await asyncio.sleep(fault.hold)
                finally:
                    await self.target.resume_service(runtime)
            case "gateway_restart":
                await self.target.restart_service("gateway")
            case _:
                assert fault.hop is not None
                await self._network(fault, fault.hop)

    async def _network(self, fault: Fault, hop: Hop) -> None:
        async def on(proxy: FaultProxy) -> None:
            if fault.kind == "cut":
                await proxy.cut()
            elif fault.kind == "reset":
                await proxy.reset()
            elif fault.kind == "latency":
                proxy.add_fault(Latency(ms=fault.ms, jitter_ms=fault.ms // 4), "nemesis_latency")
            else:
                proxy.down()

        async def off(proxy: FaultProxy) -> None:
            _healed(proxy)

        await self._on_hop(hop, on)
        if fault.hold:
            await asyncio.sleep(fault.hold)
            await self._on_hop(hop, off)

    async def heal(self) -> None:
        """Everything back as it was: both hops clear and listening, the runtime resumed and up.
        Each step is tried whatever the one before did."""

        async def clear(proxy: FaultProxy) -> None:
            _healed(proxy)

        steps: list[Callable[[], Awaitable[None]]] = [lambda: clear(self.ide_hop)]
        if self.target.has_runtime_hop:
            steps.append(lambda: self.target.on_runtime_hop(clear))
        if self.target.supports("runtime", Capability.PAUSE):
            steps.append(lambda: self.target.resume_service("runtime"))
        steps.append(lambda: self.target.start_service("runtime"))
        steps.append(lambda: self.target.start_service("gateway"))
        for step in steps:
            try:
                await step()
            except Exception:
                continue


def _healed(proxy: FaultProxy) -> None:
    proxy.clear_faults()
    if not proxy.listening:
        proxy.up()
