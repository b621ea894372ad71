"""The simulated IDE a scenario drives, set up for the target at hand.

Besides the flows, the runner reads what a turn brought without blocking: tool calls, how the turn
ended, approvals waiting for the plan, the frames received. It can then tell at once that what an
expectation awaits can no longer come, instead of waiting out the step's time.
"""

import asyncio
import time
from pathlib import Path
from typing import Any

from conformance.target_runner import TargetRunner
from scenarios.ide_protocol import ChatEntry, Frame, TurnEnd
from scenarios.model import Client
from simulators.ide import Ide, IdeSettings
from simulators.ide.approvals import AskTheTester, Verdict


class _PlanApprovals(AskTheTester):
    """Decisions come from the plan's steps; knows which requests still wait for one."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []
        self.given = 0

    def give(self, verdict: Verdict) -> None:
        self.given += 1
        super().give(verdict)

    async def decide(self, tool_name: str, arguments: dict[str, Any]) -> Verdict:
        self.asked.append(tool_name)
        return await super().decide(tool_name, arguments)

    @property
    def waiting(self) -> list[str]:
        # A decision given ahead of its request answers it as soon as it is asked.
        return self.asked[self.given :]


# After a decision a server may answer twice (W-HITL-1): at once, and again the tool_result the IDE
# sends after its decision. A user reads both before typing on; so does the plan.
SETTLE_QUIET = 1.5
SETTLE_LIMIT = 10.0


class ScenarioIde:
    def __init__(self, settings: IdeSettings, preferences: Path) -> None:
        self._approvals = _PlanApprovals()
        self._ide = Ide(settings, preferences, policy=self._approvals)
        self._turns_started = 0
        self._turns_ended = 0
        self._frames: list[Frame] = []
        self._decided = False
        self._watch_frames()

    def _watch_frames(self) -> None:
        repository = self._ide.repository
        forward = repository.on_text

        async def seen(text: str) -> None:
            self._frames.append(Frame(time.monotonic(), text))
            await forward(text)

        repository.on_text = seen

    # Flows

    async def open_panel(self) -> None:
        await self._ide.open_panel()

    async def back_to_list(self) -> None:
        await self._ide.back_to_list()

    async def new_session(self) -> str:
        return await self._ide.new_session()

    async def switch_to(self, session_id: str) -> None:
        await self._ide.switch_to(session_id)

    async def send(self, text: str) -> None:
        await self._settle()
        self._turns_started += 1
        await self._ide.send(text)

    async def switch_agent(self, agent: str, content: str) -> None:
        await self._settle()
        self._turns_started += 1
        await self._ide.switch_agent(agent, content)

    async def decide(
        self, decision: str, arguments: dict[str, Any] | None, feedback: str | None
    ) -> None:
        self._decided = True
        await self._ide.decide(decision, arguments, feedback)

    async def _settle(self) -> None:
        """Before the next turn after a decision: wait for a quiet socket, then set aside a reply
        that came after the plan took its turn's end (it answered the IDE's tool_result)."""
        if not self._decided:
            return
        self._decided = False
        began = time.monotonic()
        while (now := time.monotonic()) - began < SETTLE_LIMIT:
            last = max((frame.at for frame in self._frames[-1:]), default=began)
            if now - last >= SETTLE_QUIET:
                break
            await asyncio.sleep(SETTLE_QUIET - (now - last))
        chat = self._ide.chat
        while self.open_turns == 0 and not chat.outcomes.empty():
            extra = chat.outcomes.get_nowait()
            self._ide.trace.step(
                "chat", None, f"a further {extra.kind} after the decision: {extra.text[:200]}"
            )

    async def restart(self) -> None:
        # The restarted IDE starts with an empty chat: no turn, no request waits any more.
        self._approvals = _PlanApprovals()
        self._ide.policy = self._approvals
        await self._ide.restart()
        self._turns_started = self._turns_ended = 0
        self._watch_frames()

    async def close(self) -> None:
        await self._ide.close()

    def put_file(self, path: str, content: str) -> None:
        self._ide.put_file(path, content)

    # What a turn brought

    def take_tool_call(self) -> dict[str, Any] | None:
        try:
            call = self._ide.chat.tool_calls.get_nowait()
        except asyncio.QueueEmpty:
            return None
        return call.model_dump()

    def take_turn_end(self) -> TurnEnd | None:
        chat = self._ide.chat
        try:
            outcome = chat.outcomes.get_nowait()
        except asyncio.QueueEmpty:
            return None
        # An extra end (an error frame nobody asked for) must not close the next turn early.
        self._turns_ended = min(self._turns_started, self._turns_ended + 1)
        # Calls of a turn that is over are history: a later expectation reads the next turn.
        while not chat.tool_calls.empty():
            chat.tool_calls.get_nowait()
        return TurnEnd(outcome.kind, outcome.text)

    @property
    def open_turns(self) -> int:
        return self._turns_started - self._turns_ended

    @property
    def awaiting_approval(self) -> list[str]:
        return self._approvals.waiting

    def frames_since(self, moment: float) -> list[Frame]:
        return [frame for frame in self._frames if frame.at >= moment]

    # State

    @property
    def state(self) -> str:
        return self._ide.state

    @property
    def current_session_id(self) -> str | None:
        return self._ide.current_session_id

    @property
    def connected_session_id(self) -> str | None:
        return self._ide.connected_session_id

    @property
    def closed_session_ids(self) -> list[str]:
        return self._ide.closed_session_ids

    @property
    def errors(self) -> list[str]:
        return self._ide.errors

    @property
    def chat_items(self) -> list[ChatEntry]:
        return [ChatEntry(item.kind, item.text) for item in self._ide.chat.items]

    @property
    def last_create_body(self) -> dict[str, Any] | None:
        return self._ide.last_create_body

    @property
    def stored_session_id(self) -> str | None:
        return self._ide.stored_session_id

    @property
    def stored_agent_type(self) -> str | None:
        return self._ide.stored_agent_type

    def trace_tail(self, count: int) -> list[str]:
        return self._ide.trace_tail(count)


async def open_ide(
    gateway_url: str,
    preferences: Path,
    target: TargetRunner,
    turn_timeout: float,
    client: Client = "designed",
) -> ScenarioIde:
    endpoints = target.endpoints
    assert endpoints is not None
    settings = IdeSettings(
        gateway_url=gateway_url,
        client_key=endpoints.client_key,
        headers=endpoints.socket_headers(),
        turn_timeout=turn_timeout,
        client=client,
        # X-IDEM-1: a target that names its messages lets the IDE resend one safely.
        idempotent="idempotent" in target.profiles,
    )
    return ScenarioIde(settings, preferences)
