"""The workload: N simulated IDEs, each creating sessions, chatting, switching between its
sessions and restarting, through the IDE simulator's real flows, each operation recorded with
its outcome.

An IDE writes only to its own sessions, one turn at a time, so the order it acknowledged its
turns in is the order they must be stored in. Every user message is unique to the run, so the
checker finds each one in the histories by its text.
"""

import asyncio
import contextlib
import random
from dataclasses import dataclass
from pathlib import Path

from websockets.exceptions import WebSocketException

from contract.ids import is_local_session_id
from simulators.durability.record import Operation, Outcome, Record
from simulators.ide import Ide, IdeError, IdeSettings
from simulators.ide.chat_view import Outcome as ChatOutcome

# Words a turn's message is made of, after its unique name: a few of them, so a turn lasts
# long enough (one chunk per word) for faults to land in the middle of some.
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")
# What a flow of the simulator may end in when a fault strikes mid-way (a handshake cut short
# escapes the simulator as the websockets library's own error).
FLOW_ERRORS = (IdeError, OSError, WebSocketException)
# The trace lines kept with each operation: its transcript when it is part of an anomaly.
TRACE_TAIL = 14


@dataclass(frozen=True)
class WorkloadSettings:
    ides: int = 20
    seed: int = 0
    run: str = "run"
    turn_timeout: float = 10.0
    # At most this many sessions per IDE; then it only switches between them.
    sessions_per_ide: int = 3
    # Pause between one IDE's operations (uniform, seconds): think time.
    think: tuple[float, float] = (0.0, 0.15)
    # ... and after an operation that did not succeed.
    backoff: float = 0.3
    # The IDE names each message and resends an unanswered one (the target claims idempotent).
    idempotent: bool = False


class SimulatedIde:
    def __init__(
        self,
        number: int,
        settings: WorkloadSettings,
        ide_settings: IdeSettings,
        preferences: Path,
        record: Record,
    ) -> None:
        self.number = number
        self.settings = settings
        self.ide = Ide(ide_settings, preferences)
        self.record = record
        self.rng = random.Random(f"{settings.seed}:{number}")
        self.sessions: list[str] = []
        self.turns = 0

    def _trace(self) -> list[str]:
        return self.ide.trace_tail(TRACE_TAIL)

    def _add(self, kind: str, start: float, outcome: Outcome, **details: object) -> Operation:
        return self.record.add(
            self.number,
            kind,  # type: ignore[arg-type]
            start,
            outcome,
            trace=self._trace(),
            **details,
        )

    async def create(self) -> None:
        start = self.record.now()
        before = self.ide.current_session_id
        try:
            session_id = await self.ide.new_session()
        except FLOW_ERRORS as exc:
            made = self.ide.current_session_id
            if made is not None and made != before and not is_local_session_id(made):
                # The create answered with an id; only the socket after it failed.
                self.sessions.append(made)
                self._add("create", start, "ok", session_id=made, detail=_said(exc))
            else:
                self._add("create", start, "unknown", detail=_said(exc))
            return
        if not is_local_session_id(session_id):
            self.sessions.append(session_id)
            self._add("create", start, "ok", session_id=session_id)
            return
        # C-CREATE-2: the IDE went on with a local id. A refused dial or an error status did
        # nothing; a timeout or a connection that broke may have made a session no one knows.
        failure = next(
            (line for line in reversed(self._trace()) if "the gateway failed" in line), ""
        )
        refused = "ConnectError" in failure or "answered" in failure
        self._add(
            "create",
            start,
            "fail" if refused else "unknown",
            session_id=session_id,
            detail=f"local id {session_id}: {failure}",
        )
        # Its turns would go to a session the server makes on the first message (or refuses):
        # the IDE carries on in one of its own sessions instead, when it has one.
        if self.sessions:
            await self.switch(self.rng.choice(self.sessions))

    async def switch(self, session_id: str) -> None:
        start = self.record.now()
        try:
            await self.ide.switch_to(session_id)
        except FLOW_ERRORS as exc:
            self._add("switch", start, "fail", session_id=session_id, detail=_said(exc))
            return
        self._add("switch", start, "ok", session_id=session_id)

    async def restart(self) -> None:
        start = self.record.now()
        try:
            await self.ide.restart()
        except FLOW_ERRORS as exc:
            self._add("restart_ide", start, "fail", detail=_said(exc))
            return
        session_id = self.ide.current_session_id
        if (
            session_id is not None
            and not is_local_session_id(session_id)
            and session_id not in self.sessions
        ):
            # The restore failed, so the IDE made a new one (C-INIT-1): it is ours as well.
            self.sessions.append(session_id)
        self._add("restart_ide", start, "ok", session_id=session_id)

    async def turn(self) -> None:
        # Where the message really goes: the socket's session (a switch whose socket failed
        # to open leaves the IDE showing one session and its socket on the one before).
        session_id = self.ide.repository.session_id or self.ide.current_session_id
        if session_id is None or is_local_session_id(session_id):
            await self.create()
            return
        self.turns += 1
        words = " ".join(self.rng.sample(WORDS, self.rng.randrange(3, 7)))
        text = f"dur-{self.settings.run} ide{self.number} turn{self.turns} {words}"
        outcomes = self.ide.chat.outcomes
        while not outcomes.empty():
            # A late ending of an earlier turn that timed out is not this turn's.
            outcomes.get_nowait()
        start = self.record.now()
        try:
            await self.ide.send(text)
        except FLOW_ERRORS as exc:
            self._add("turn", start, "unknown", session_id=session_id, text=text, detail=_said(exc))
            await self._close_turn(answered=False)
            return
        try:
            async with asyncio.timeout(self.settings.turn_timeout):
                ended: ChatOutcome = await outcomes.get()
        except TimeoutError:
            self._add(
                "turn",
                start,
                "unknown",
                session_id=session_id,
                text=text,
                detail=f"no final frame within {self.settings.turn_timeout:g} s",
            )
            await self._close_turn(answered=False)
            return
        if ended.kind == "reply":
            self._add("turn", start, "ok", session_id=session_id, text=text, reply=ended.text)
        elif self.ide.repository.connected:
            # An error frame on a socket that stays open: the gateway refused the turn.
            self._add("turn", start, "fail", session_id=session_id, text=text, detail=ended.text)
        else:
            self._add("turn", start, "unknown", session_id=session_id, text=text, detail=ended.text)
        await self._close_turn(answered=ended.kind == "reply")

    async def _close_turn(self, answered: bool) -> None:
        """Nothing of this turn may end the next one: resends still under way are called off,
        and after a turn that was not answered the socket goes too (the next send opens a fresh
        one), so a late answer to this message is never taken for the next message's."""
        await self.ide.chat.close()
        if not answered:
            self.ide.protocol.answered()
            await self.ide.repository.disconnect()
        outcomes = self.ide.chat.outcomes
        while not outcomes.empty():
            outcomes.get_nowait()

    async def step(self) -> None:
        choice = self.rng.random()
        if not self.sessions or (
            choice < 0.08 and len(self.sessions) < self.settings.sessions_per_ide
        ):
            await self.create()
        elif choice < 0.16 and len(self.sessions) > 1:
            others = [s for s in self.sessions if s != self.ide.current_session_id]
            await self.switch(self.rng.choice(others or self.sessions))
        elif choice < 0.19:
            await self.restart()
        else:
            await self.turn()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                done = len(self.record.operations)
                await self.step()
                failed = any(
                    op.outcome != "ok"
                    for op in self.record.operations[done:]
                    if op.ide == self.number
                )
                # After a refusal a user waits a moment before trying again.
                pause = self.settings.backoff if failed else self.rng.uniform(*self.settings.think)
                await asyncio.sleep(pause)
        finally:
            with contextlib.suppress(Exception):
                await self.ide.close()


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def run_workload(
    settings: WorkloadSettings,
    ide_settings: IdeSettings,
    scratch: Path,
    record: Record,
    stop: asyncio.Event,
) -> None:
    """Every IDE at work until `stop` is set; each then finishes the operation it is in."""
    ides = [
        SimulatedIde(number, settings, ide_settings, scratch / f"ide-{number}.json", record)
        for number in range(settings.ides)
    ]
    await asyncio.gather(*(ide.run(stop) for ide in ides))
