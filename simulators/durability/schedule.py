"""The nemesis's plan: which faults, when, for how long. Pure: the same seed, count and fault
kinds give the same schedule, so a run is replayed from the seed it printed.

A fault is named `kind` for a service (`kill`, `restart`, `pause` of the runtime,
`gateway_restart`) or `kind@hop` for the network (`cut`, `reset`, `latency`, `down` on the
IDE-to-gateway hop `ide` or the gateway-to-runtime hop `runtime`). Faults never overlap: each
one is healed before the next begins, so every anomaly sits near the faults that caused it.
"""

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Hop = Literal["ide", "runtime"]
SERVICE_FAULTS = ("kill", "restart", "pause", "gateway_restart")
NETWORK_FAULTS = ("cut", "reset", "latency", "down")
# Faults that last (held `hold` seconds, then healed); the others are one-shot.
LASTING = frozenset({"kill", "pause", "latency", "down"})


class ScheduleError(ValueError):
    """A schedule or fault name that cannot be used; the message says why."""


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the run began
    kind: str
    hop: Hop | None = None
    hold: float = 0.0  # seconds it lasts before it is healed (lasting faults)
    ms: int = 0  # latency added per chunk

    @property
    def name(self) -> str:
        return f"{self.kind}@{self.hop}" if self.hop else self.kind

    def describe(self) -> str:
        if self.hop is not None:
            where = "IDE->gateway" if self.hop == "ide" else "gateway->runtime"
            what = f"{self.kind} {where}"
        elif self.kind == "gateway_restart":
            what = "restart gateway"
        elif self.kind == "kill":
            what = "kill -9 runtime"
        else:
            what = f"{self.kind} runtime"
        if self.kind == "latency":
            what += f" +{self.ms} ms"
        held = f" for {self.hold:.2f}s" if self.kind in LASTING else ""
        return f"+{self.at:6.2f}s {what}{held}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Schedule:
    seed: int | None
    faults: tuple[Fault, ...]

    def render(self) -> str:
        head = f"nemesis schedule, seed {self.seed}" if self.seed is not None else "given schedule"
        lines = [f"{head}: {len(self.faults)} faults"]
        lines += [f"  {fault.describe()}" for fault in self.faults]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "faults": [fault.as_dict() for fault in self.faults]}

    @property
    def span(self) -> float:
        """When the last fault is planned to be healed."""
        return max((fault.at + fault.hold for fault in self.faults), default=0.0)


def parse_name(name: str) -> tuple[str, Hop | None]:
    kind, _, hop = name.partition("@")
    if kind in SERVICE_FAULTS and not hop:
        return kind, None
    if kind in NETWORK_FAULTS and hop in ("ide", "runtime"):
        return kind, hop  # type: ignore[return-value]
    known = [*SERVICE_FAULTS, *(f"{k}@{h}" for k in NETWORK_FAULTS for h in ("ide", "runtime"))]
    raise ScheduleError(f"unknown fault {name!r}; known: {', '.join(known)}")


def generate_schedule(
    seed: int,
    count: int,
    names: Sequence[str],
    gap: tuple[float, float] = (0.2, 0.8),
    hold: tuple[float, float] = (0.3, 1.2),
    start: float = 0.5,
    service_share: float = 0.3,
) -> Schedule:
    """`count` faults drawn from `names` in random order and spacing: each begins `gap` seconds
    (uniform) after the previous one was healed; lasting ones hold `hold` seconds. About
    `service_share` of them act on a service (kill, restart, pause), the rest on the network."""
    if count < 0:
        raise ScheduleError(f"a fault count of at least 0, not {count}")
    if count and not names:
        raise ScheduleError("no fault this target can suffer")
    parsed = [parse_name(name) for name in names]
    services = [fault for fault in parsed if fault[1] is None]
    network = [fault for fault in parsed if fault[1] is not None]
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = start
    for _ in range(count):
        # A restarted service takes seconds to come back, a network fault none: the share keeps
        # a schedule's length in proportion to its count.
        pool = services if services and (not network or rng.random() < service_share) else network
        kind, hop = rng.choice(pool)
        held = round(rng.uniform(*hold), 2) if kind in LASTING else 0.0
        ms = rng.randrange(50, 400) if kind == "latency" else 0
        faults.append(Fault(round(at, 2), kind, hop, held, ms))
        at += held + rng.uniform(*gap)
    return Schedule(seed, tuple(faults))


def schedule_from(items: Sequence[dict[str, Any]]) -> Schedule:
    """A schedule written out (a plan's `faults:` list): `{at, fault, hold?, ms?}` each, where
    `fault` is a name as above."""
    faults = []
    for item in items:
        kind, hop = parse_name(str(item["fault"]))
        faults.append(
            Fault(
                float(item["at"]), kind, hop, float(item.get("hold", 0.0)), int(item.get("ms", 0))
            )
        )
    ordered = sorted(faults, key=lambda fault: fault.at)
    return Schedule(None, tuple(ordered))
