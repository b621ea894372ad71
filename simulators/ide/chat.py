"""Chat: the agent bloc. History shown as chat items, frames handled as they come: replies, tool
calls run by the executor, approvals asked of the policy, errors. How frames are read and shown
is the client model's (frames_in, chat_view)."""

import asyncio
from typing import Any

from contract.bodies import History
from contract.frames import ToolCallFrame
from simulators.ide.approvals import ApprovalPolicy
from simulators.ide.chat_view import ChatItem, ChatView, ItemKind, Outcome
from simulators.ide.frames_in import Chunk, Dropped, Failed, FrameReader, Malformed, Switched
from simulators.ide.protocol_service import AgentProtocolService
from simulators.ide.tools import ToolExecutor, ToolFailed
from simulators.ide.trace import CHAT, Trace
from simulators.ide.websocket_repository import SocketError

__all__ = ["Chat", "ChatItem", "ItemKind", "Outcome"]

# Resends of one message at most: a server that drops every socket mid-turn ends the turn in an
# error, not in a loop.
MAX_RESENDS = 3


class Chat:
    def __init__(
        self,
        protocol: AgentProtocolService,
        executor: ToolExecutor,
        policy: ApprovalPolicy,
        trace: Trace,
        reader: FrameReader,
        view: ChatView,
    ) -> None:
        self.protocol = protocol
        self.executor = executor
        self.policy = policy
        self.trace = trace
        self.reader = reader
        self.view = view
        self.items: list[ChatItem] = []
        self.errors: list[str] = []
        self.agent = "orchestrator"
        self.outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self.tool_calls: asyncio.Queue[ToolCallFrame] = asyncio.Queue()
        self._reply: list[str] = []
        self._approvals: set[asyncio.Task[None]] = set()
        # A turn was started and has not ended yet: a socket closing now leaves it unanswered.
        self._turn_open = False
        self._resends = 0
        self._resending: set[asyncio.Task[None]] = set()

    def show_history(self, history: History | None) -> None:
        self.items = self.view.history_items(history)
        self._reply = []

    def turn_started(self, text: str | None = None) -> None:
        if text is not None:
            self.items.append(ChatItem("user", text))
        # What a turn cut off by a dropped socket had received is not this turn's reply.
        self._reply = []
        self._turn_open = True
        self._resends = 0

    def _end_turn(self, outcome: Outcome) -> None:
        self._turn_open = False
        self.protocol.answered()
        self.outcomes.put_nowait(outcome)

    def fail(self, text: str) -> None:
        self.errors.append(text)
        self.items.append(ChatItem("error", text))
        self._end_turn(Outcome("error", text))

    def socket_closed(self, reason: str) -> None:
        """The socket is gone (closed by the gateway, or would not send): a turn in progress
        ends in that error."""
        if not self._turn_open:
            return
        unanswered = self.protocol.unanswered
        if unanswered is not None and self._resending:
            # A resend is already under way (the reader and a failed send both heard of the
            # drop): a second one would interleave two answers in one reply.
            return
        if unanswered is not None and self._resends < MAX_RESENDS:
            # X-IDEM-1: the server may have stored the turn; the same name gets its reply.
            self._resends += 1
            name = unanswered["client_message_id"]
            self.trace.step(CHAT, None, f"{reason}; sending message {name} again", "C-WS-2")
            task = asyncio.create_task(self._resend(reason))
            self._resending.add(task)
            task.add_done_callback(self._resending.discard)
            return
        self.trace.step(CHAT, None, reason, "C-WS-2", ok=False)
        self.fail(reason)

    async def _resend(self, reason: str) -> None:
        def fresh_reply() -> None:
            # The resend's answer is the whole reply again: what came of it before is dropped,
            # once the old socket can bring no more of it.
            self._reply = []

        try:
            await self.protocol.resend_unanswered(fresh_reply)
        except SocketError as exc:
            self.trace.step(CHAT, None, f"{reason}; the resend failed: {exc}", "C-WS-2", ok=False)
            self.fail(f"{reason}; the resend failed: {exc}")

    async def on_text(self, text: str) -> None:
        self.trace.traffic(f"WS recv {text[:300]}")
        match self.reader.read(text):
            case Chunk() as chunk:
                self._chunk(chunk)
            case ToolCallFrame() as call:
                # The message's turn ended in this call: a resend now would ask for it again.
                self.protocol.answered()
                self.items.append(ChatItem("tool_call", call.tool_name, call.call_id))
                self.tool_calls.put_nowait(call)
                await self._tool_call(call)
            case Switched(to_agent):
                self.agent = to_agent or self.agent
                self.items.append(ChatItem("agent_switch", to_agent or ""))
            case Failed(content):
                self.trace.step(CHAT, None, f"error frame: {content}", ok=False)
                self.fail(content)
            case Malformed(reason):
                self.fail(reason)
            case Dropped(reason):
                self.trace.step(CHAT, None, f"frame dropped: {reason}")

    def _chunk(self, chunk: Chunk) -> None:
        if self.view.bubble_per_chunk:
            self.items.append(ChatItem("assistant", chunk.text))
        self._reply.append(chunk.text)
        if chunk.is_final:
            reply = "".join(self._reply)
            self._reply = []
            if not self.view.bubble_per_chunk:
                self.items.append(ChatItem("assistant", reply))
            self._end_turn(Outcome("reply", reply))

    async def _tool_call(self, call: ToolCallFrame) -> None:
        if call.requires_approval:
            # Asking the user may take long: never hold up the frames that follow.
            task = asyncio.create_task(self._ask_approval(call))
            self._approvals.add(task)
            task.add_done_callback(self._approvals.discard)
            return
        await self._run(call, call.arguments)

    async def _run(self, call: ToolCallFrame, arguments: dict[str, Any]) -> None:
        """C-TOOL-1: run the tool, answer its `tool_result` under the call's own id."""
        try:
            try:
                value = self.executor.run(call.tool_name, arguments)
            except ToolFailed as exc:
                self.trace.step(CHAT, None, f"ran {call.tool_name}: {exc}", "C-TOOL-1")
                await self.protocol.send_tool_failed(call, exc)
                return
            self.trace.step(CHAT, None, f"ran {call.tool_name}: ok", "C-TOOL-1")
            await self.protocol.send_tool_result(call, arguments, value)
        except SocketError as exc:
            self.socket_closed(str(exc))

    async def _ask_approval(self, call: ToolCallFrame) -> None:
        """W-HITL-1: the decision, then the IDE's own `tool_result` for the same call."""
        verdict = await self.policy.decide(call.tool_name, call.arguments)
        self.trace.step(CHAT, None, f"{verdict.decision} {call.tool_name}", "C-TOOL-1")
        try:
            run_with = await self.protocol.send_decision(call, verdict)
            if run_with is None:
                await self.protocol.send_rejected(call, verdict)
                return
        except SocketError as exc:
            self.socket_closed(str(exc))
            return
        await self._run(call, run_with)

    async def close(self) -> None:
        for task in [*self._approvals, *self._resending]:
            task.cancel()
