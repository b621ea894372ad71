"""Chat: the agent bloc. Deferred connect, history shown as chat items, frames handled as they
come: replies, tool calls run by the executor, approvals asked of the policy, errors."""

import asyncio
from dataclasses import dataclass
from typing import Literal

from conformance.contract.bodies import History
from conformance.contract.frames import (
    AgentSwitchedFrame,
    AssistantMessageFrame,
    ErrorFrame,
    FrameError,
    ToolCallFrame,
    parse_server_frame,
)
from simulators.ide.approvals import ApprovalPolicy
from simulators.ide.protocol_service import AgentProtocolService
from simulators.ide.tools import ToolExecutor, ToolFailed
from simulators.ide.trace import CHAT, Trace

ItemKind = Literal["user", "assistant", "tool_result", "tool_call", "agent_switch", "error"]


@dataclass(frozen=True)
class ChatItem:
    kind: ItemKind
    text: str


@dataclass(frozen=True)
class Outcome:
    """How a turn ended for the user: a final reply, or an error."""

    kind: Literal["reply", "error"]
    text: str


def history_to_items(history: History | None) -> list[ChatItem]:
    """C-CHAT-1: user -> user item, assistant -> final assistant item, tool -> tool-result item."""
    items: list[ChatItem] = []
    for message in history.messages if history else []:
        if message.role == "user":
            items.append(ChatItem("user", message.content or ""))
        elif message.role == "assistant" and message.content is not None:
            items.append(ChatItem("assistant", message.content))
        elif message.role == "tool":
            items.append(ChatItem("tool_result", message.content or ""))
    return items


class Chat:
    def __init__(
        self,
        protocol: AgentProtocolService,
        executor: ToolExecutor,
        policy: ApprovalPolicy,
        trace: Trace,
    ) -> None:
        self.protocol = protocol
        self.executor = executor
        self.policy = policy
        self.trace = trace
        self.items: list[ChatItem] = []
        self.errors: list[str] = []
        self.agent = "orchestrator"
        self.outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self.tool_calls: asyncio.Queue[ToolCallFrame] = asyncio.Queue()
        self._reply: list[str] = []
        self._approvals: set[asyncio.Task[None]] = set()
        self._seen_calls: set[str] = set()
        # A turn was started and has not ended yet: a socket closing now leaves it unanswered.
        self._turn_open = False

    def show_history(self, history: History | None) -> None:
        self.items = history_to_items(history)
        self._reply = []

    def turn_started(self) -> None:
        self._turn_open = True

    def _end_turn(self, outcome: Outcome) -> None:
        self._turn_open = False
        self.outcomes.put_nowait(outcome)

    def fail(self, text: str) -> None:
        self.errors.append(text)
        self.items.append(ChatItem("error", text))
        self._end_turn(Outcome("error", text))

    def socket_closed(self, reason: str) -> None:
        """The socket is gone (closed by the gateway, or would not send): a turn in progress
        ends in that error."""
        if self._turn_open:
            self.trace.step(CHAT, None, reason, "C-WS-2", ok=False)
            self.fail(reason)

    async def on_text(self, text: str) -> None:
        self.trace.traffic(f"WS recv {text[:300]}")
        try:
            frame = parse_server_frame(text)
        except FrameError as exc:
            self.fail(f"invalid frame from the gateway: {exc}")
            return
        match frame:
            case AssistantMessageFrame():
                self._reply.append(frame.text)
                if frame.is_final:
                    reply = "".join(self._reply)
                    self._reply = []
                    self.items.append(ChatItem("assistant", reply))
                    self._end_turn(Outcome("reply", reply))
            case ToolCallFrame():
                # An approved call comes back under its own call_id: the same call, not a new one.
                if frame.call_id not in self._seen_calls:
                    self._seen_calls.add(frame.call_id)
                    self.items.append(ChatItem("tool_call", frame.tool_name))
                    self.tool_calls.put_nowait(frame)
                await self._tool_call(frame)
            case AgentSwitchedFrame():
                self.agent = frame.switched_to
                self.items.append(ChatItem("agent_switch", frame.switched_to))
            case ErrorFrame():
                self.trace.step(CHAT, None, f"error frame: {frame.content}", ok=False)
                self.fail(frame.content)

    async def _tool_call(self, frame: ToolCallFrame) -> None:
        if frame.requires_approval:
            # Asking the user may take long: never hold up the frames that follow.
            task = asyncio.create_task(self._ask_approval(frame))
            self._approvals.add(task)
            task.add_done_callback(self._approvals.discard)
            return
        try:
            result, error = self.executor.run(frame.tool_name, frame.arguments), None
        except ToolFailed as exc:
            result, error = None, str(exc)
        self.trace.step(CHAT, None, f"ran {frame.tool_name}: {error or 'ok'}", "C-TOOL-1")
        await self.protocol.send_tool_result(frame.call_id, frame.tool_name, result, error)

    async def _ask_approval(self, frame: ToolCallFrame) -> None:
        verdict = await self.policy.decide(frame.tool_name, frame.arguments)
        self.trace.step(CHAT, None, f"{verdict.decision} {frame.tool_name}", "C-TOOL-1")
        await self.protocol.send_hitl_decision(
            frame.call_id, verdict.decision, verdict.arguments, verdict.feedback
        )

    async def close(self) -> None:
        for task in list(self._approvals):
            task.cancel()
