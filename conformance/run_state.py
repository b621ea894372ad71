"""What one verify run learns about the target as it goes, shared by every check.

- Prerequisites: a few capabilities most checks stand on (a session can be created, a turn ends, a
  history can be read). The first time one fails, the run remembers it; every later check that
  needs it is `blocked` by it instead of failing the same way again (or waiting out the same
  timeout).
- Findings: failures a check saw of a requirement other than its own (a key in a response, a
  profile feature that did not answer). The plugin turns them into that requirement's verdict.
- Pacing: a target that rate-limits (429) is honoured and slowed down for; `--rate` caps requests.

One run is one pytest session in one process, so the state is module-level and reset by the plugin.
"""

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field

# pytest.skip.Exception, by the name a type checker can follow.
from _pytest.outcomes import Skipped

from conformance.failures import CheckFailure, short
from contract.requirements import catalogue


class Blocked(Skipped):
    """The check cannot run: a prerequisite failed earlier in the run.

    A kind of pytest's skip: it passes straight through hypothesis (which would otherwise shrink
    it as a failure), the checks' `except Exception` clauses and fixtures; the plugin tells it
    from a plain skip and reports it as `blocked`.
    """

    def __init__(self, prerequisite: str, message: str) -> None:
        self.prerequisite = prerequisite
        self.message = message
        super().__init__(f"blocked by {prerequisite}: {message}")


class PrerequisiteFailure(CheckFailure):
    """A prerequisite failed in this check: its requirement fails; the check's own are blocked
    (unless the check is that requirement's)."""


@dataclass(frozen=True)
class Finding:
    requirement: str
    message: str
    seen_in: str


@dataclass
class Pacing:
    """Requests per second, shared by every client of the run; 429s slow it down."""

    rate: float | None = None
    limited: int = 0
    waited: float = 0.0
    _next: float = 0.0
    _recent: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _slot(self) -> float:
        """Seconds to wait before the next request may go."""
        if self.rate is None:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + 1 / self.rate
            return start - now

    async def wait_turn(self) -> None:
        delay = self._slot()
        if delay > 0:
            await asyncio.sleep(delay)

    def sent(self) -> None:
        """Note a request, so that a first 429 can tell the pace the target stood."""
        with self._lock:
            now = time.monotonic()
            self._recent.append(now)
            while self._recent and self._recent[0] < now - 1:
                self._recent.popleft()

    def rate_limited(self, retry_after: float) -> None:
        """A 429 came: wait as asked (the caller does), and slow down from now on: to a little
        under the pace of the last second at the first 429, by half at each later one."""
        with self._lock:
            self.limited += 1
            self.waited += retry_after
            if self.rate is None:
                self.rate = max(len(self._recent) * 0.8, 1.0)
            else:
                self.rate = max(self.rate / 2, 0.5)
            self._next = max(self._next, time.monotonic() + retry_after)


@dataclass
class RunState:
    prerequisites: dict[str, Finding] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    pacing: Pacing = field(default_factory=Pacing)
    current_check: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def require(self, prerequisite: str) -> None:
        """Raise Blocked when the prerequisite has failed earlier in the run."""
        failed = self.prerequisites.get(prerequisite)
        if failed is not None:
            raise Blocked(prerequisite, failed.message)

    def prerequisite_failed(
        self, prerequisite: str, expected: str, received: object, reproduce: str | None = None
    ) -> PrerequisiteFailure:
        """Remember the failure and return the exception to raise."""
        failure = PrerequisiteFailure(prerequisite, expected, short(received), reproduce)
        message = str(failure).splitlines()[0]
        with self._lock:
            if prerequisite not in self.prerequisites:
                finding = Finding(prerequisite, message, self.current_check)
                self.prerequisites[prerequisite] = finding
                self.findings.append(finding)
        return failure

    def found(self, requirement: str, message: str) -> None:
        """A failure of `requirement` seen while checking something else; the check goes on."""
        with self._lock:
            self.findings.append(Finding(requirement, message, self.current_check))

    def take_findings(self) -> list[Finding]:
        with self._lock:
            taken, self.findings = self.findings, []
        return taken


PREREQUISITES: dict[str, str] = {
    "R-CREATE-1": "a session can be created",
    "R-HIST-1": "a session's history can be read",
    "R-STREAM-1": "a turn on the runtime's stream ends",
    "W-CONN-1": "a WebSocket opens for a created session",
    "W-TURN-1": "a turn over the WebSocket ends",
    "G-PROXY-1": "the gateway passes a create on to the runtime",
}


def needs(requirement_id: str) -> tuple[str, ...]:
    return catalogue()[requirement_id].needs


_state = RunState()


def state() -> RunState:
    return _state


def reset(rate: float | None = None) -> RunState:
    global _state
    _state = RunState(pacing=Pacing(rate=rate))
    return _state
