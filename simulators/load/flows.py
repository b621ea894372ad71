"""One simulated IDE's work under load: the IDE simulator's own flows, in a loop, each timed.

A cycle is what a user does in a working session: create a session and chat in it, create a
second one and chat, switch back to the first (history, list, socket reconnect) and chat, then
restart the IDE, which restores the stored session (history and socket again), and chat once
more. An IDE's first pass enters the cycle after its first create at one of four places (the
chat, the second create, the switch or the restore, by the IDE's number), so that every flow
is measured even in a run where each IDE does only a few operations. Between two operations
the user thinks. An operation that fails is recorded with its cause; the IDE is then closed and
a fresh one starts the cycle over, as a user would restart a broken IDE, so that one failure
does not cascade into every later step of the same IDE.

Latency is the user's wait: a create is `POST /sessions`, the list reload and the socket to the
new session; a chat is one turn from the send to the final reply; a switch is the history, the
list and the socket reconnect; a restore is the IDE closed and opened again on its stored
session (history and socket).
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from simulators.ide import Ide, IdeSettings
from simulators.ide.approvals import ApproveAll
from simulators.ide.trace import Trace

RESTORE, CREATE, CHAT, SWITCH = "restore", "create", "chat", "switch"
FLOWS = (CREATE, CHAT, SWITCH, RESTORE)
# Not a flow: an IDE that broke down inside the load generator itself (its bug, not the target's).
BROKEN = "load generator"
# Positions of the cycle (below) an IDE may go to after its first create: a chat, the second
# create, the switch (back to the one session it has) or the restore.
ENTRIES = (1, 2, 4, 6)
# Trace events an IDE keeps: enough to show what led to a failure, bounded over a long run.
TRACE_KEPT = 30
TRACE_SHOWN = 12


@dataclass(frozen=True)
class Outcome:
    """One operation: its flow, when it ended (seconds since the run's origin), its latency in
    seconds, and the error if it failed."""

    flow: str
    at: float
    latency: float
    error: str | None = None
    trace: tuple[str, ...] = ()


Record = Callable[[Outcome], None]


@dataclass(frozen=True)
class Pace:
    """When an IDE stops and how long its user thinks."""

    origin: float  # time.time() at the run's start, shared by every worker process
    stop_at: float  # seconds since origin
    operations: int | None
    think_min: float
    think_max: float
    step_timeout: float


class IdeCycle:
    """One simulated IDE going round the cycle, one operation per `next()` call.

    Used by the load workers (SimulatedUser, below) and by the Locust users alike, so that both
    drive the same flows. After a failed operation the IDE is closed and the next call starts a
    fresh one on the same preferences file, at the cycle's beginning.
    """

    def __init__(
        self, index: int, settings: IdeSettings, preferences: Path, step_timeout: float
    ) -> None:
        self.index = index
        self.settings = settings
        self.preferences = preferences
        self.step_timeout = step_timeout
        self.done = 0
        self._ide: Ide | None = None
        self._position = 0
        self._first = ""
        # Where the first pass goes after its first create: IDEs enter the cycle at different
        # flows, so that every flow is measured from the start of a run, however few
        # operations each IDE does (at a person's pace, a run sees only a few per IDE).
        self._entry: int | None = ENTRIES[index % len(ENTRIES)]

    def _steps(self, ide: Ide) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        return [
            (CREATE, self._remember_first),
            (CHAT, lambda: self._turn(ide, "hello")),
            (CREATE, ide.new_session),
            (CHAT, lambda: self._turn(ide, "second session")),
            (SWITCH, lambda: ide.switch_to(self._first)),
            (CHAT, lambda: self._turn(ide, "back again")),
            (RESTORE, lambda: self._restart(ide)),
            (CHAT, lambda: self._turn(ide, "after a restart")),
        ]

    async def _remember_first(self) -> None:
        assert self._ide is not None
        self._first = await self._ide.new_session()

    async def _turn(self, ide: Ide, text: str) -> str:
        await ide.send(f"{text} from IDE {self.index} turn {self.done}")
        return await ide.final_reply()

    async def _restart(self, ide: Ide) -> None:
        await ide.restart()
        # The shipped client restores nothing at start-up: its user picks the session again.
        if ide.connected_session_id is None:
            await ide.switch_to(self._first)

    async def next(self) -> Outcome:
        """Do the next operation; `at` of the outcome is time.time() when it ended."""
        if self._ide is None:
            self._ide = Ide(self.settings, self.preferences, policy=ApproveAll(), trace=Trace())
            self._position = 0
        ide = self._ide
        flow, action = self._steps(ide)[self._position]
        errors_before = len(ide.errors)
        events_before = len(ide.trace.events)
        started = time.perf_counter()
        error: str | None = None
        try:
            async with asyncio.timeout(self.step_timeout):
                await action()
        except TimeoutError:
            error = f"no answer within the step timeout ({self.step_timeout:g} s)"
        except Exception as exc:  # what the IDE would show its user, whatever the layer
            error = f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - started
        if error is None:
            error = _failure_seen(ide, errors_before, events_before)
        self.done += 1
        trace = tuple(ide.trace_tail(TRACE_SHOWN)) if error is not None else ()
        del ide.trace.events[:-TRACE_KEPT]
        if error is not None:
            await self.close()
        elif self._position == 0 and self._entry is not None:
            self._position, self._entry = self._entry, None
        else:
            self._position = (self._position + 1) % len(self._steps(ide))
        return Outcome(flow, time.time(), latency, error, trace)

    async def close(self) -> None:
        ide, self._ide = self._ide, None
        if ide is not None:
            await ide.close()


class SimulatedUser:
    """An IDE's user in a load worker: operations with think times between, until the run's
    time or this user's share of the operations is up."""

    def __init__(
        self, index: int, settings: IdeSettings, folder: Path, pace: Pace, record: Record
    ) -> None:
        self.index = index
        self.pace = pace
        self.record = record
        self.cycle = IdeCycle(index, settings, folder / f"ide-{index}.json", pace.step_timeout)
        self.random = random.Random(index)

    def _finished(self) -> bool:
        operations = self.pace.operations
        over_count = operations is not None and self.cycle.done >= operations
        return over_count or time.time() - self.pace.origin >= self.pace.stop_at

    async def run(self) -> None:
        try:
            while not self._finished():
                outcome = await self.cycle.next()
                self.record(replace(outcome, at=outcome.at - self.pace.origin))
                if not self._finished():
                    think = self.random.uniform(self.pace.think_min, self.pace.think_max)
                    # Never past the end: a user still thinking then has nothing left to do.
                    left = self.pace.origin + self.pace.stop_at - time.time()
                    await asyncio.sleep(max(0.0, min(think, left)))
        finally:
            await self.cycle.close()


def _failure_seen(ide: Ide, errors_before: int, events_before: int) -> str | None:
    """What went wrong during the step without an exception: an error shown in the chat (a
    socket that did not open, a turn that ended in an error) or a flow step the trace marks
    failed (a create that fell back to a local id, a list that did not load)."""
    if len(ide.errors) > errors_before:
        return ide.errors[errors_before]
    events = ide.trace.events[events_before:] if events_before <= len(ide.trace.events) else []
    failed = next((event for event in events if not event.ok), None)
    return failed.message if failed is not None else None
