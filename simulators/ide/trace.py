"""Structured trace of what the IDE did: flow, step, client behaviour ID, and the traffic caused."""

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

CREATE, SWITCH, INIT, CHAT = "create", "switch", "init", "chat"


@dataclass
class TraceEvent:
    at: float
    flow: str
    step: int | None
    requirement: str | None
    message: str
    traffic: list[str] = field(default_factory=list)
    ok: bool = True

    def render(self) -> str:
        where = f"{self.flow} step {self.step}" if self.step is not None else self.flow
        req = f" [{self.requirement}]" if self.requirement else ""
        mark = "" if self.ok else " FAILED"
        lines = [f"{self.at:8.3f}s {where}{req}{mark}: {self.message}"]
        lines.extend(f"           {line}" for line in self.traffic)
        return "\n".join(lines)


@dataclass
class Trace:
    events: list[TraceEvent] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _traffic: list[str] = field(default_factory=list)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "<redacted>")
        return text

    def traffic(self, line: str) -> None:
        """HTTP or WebSocket traffic, attached to the next step event."""
        shown = self.redact(line)
        self._traffic.append(shown if len(shown) <= 500 else shown[:500] + "…")

    def step(
        self,
        flow: str,
        step: int | None,
        message: str,
        requirement: str | None = None,
        ok: bool = True,
    ) -> TraceEvent:
        event = TraceEvent(
            time.monotonic() - self.started, flow, step, requirement, message, self._traffic, ok
        )
        self._traffic = []
        self.events.append(event)
        return event

    def traffic_lines(self) -> list[str]:
        """Every traffic line so far, those not yet attached to a step included."""
        return [line for event in self.events for line in event.traffic] + self._traffic

    def tail(self, count: int) -> list[str]:
        return [line for event in self.events[-count:] for line in event.render().splitlines()]

    def render(self) -> str:
        return "\n".join(event.render() for event in self.events)

    def to_json(self) -> str:
        return json.dumps([asdict(event) for event in self.events], ensure_ascii=False)

    def as_list(self) -> list[dict[str, Any]]:
        return [asdict(event) for event in self.events]
