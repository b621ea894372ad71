"""AgentProtocolService: the protocol's frames, written as the client model writes them, over the
repository's socket."""

from typing import Any

from conformance.contract.frames import ToolCallFrame
from simulators.ide.approvals import Verdict
from simulators.ide.frames_out import FramesOut
from simulators.ide.tools import ToolFailed
from simulators.ide.websocket_repository import WebSocketRepository


class AgentProtocolService:
    def __init__(self, repository: WebSocketRepository, frames: FramesOut) -> None:
        self.repository = repository
        self.frames = frames

    async def reconnect(self, session_id: str) -> None:
        await self.repository.reconnect(session_id)

    async def disconnect(self) -> None:
        await self.repository.disconnect()

    async def send_user_message(self, content: str) -> None:
        await self.repository.send(self.frames.user_message(content))

    async def send_switch_agent(self, agent_type: str, content: str) -> None:
        await self.repository.send(self.frames.switch_agent(agent_type, content))

    async def send_tool_result(
        self, call: ToolCallFrame, arguments: dict[str, Any], value: Any
    ) -> None:
        await self.repository.send(self.frames.tool_result(call, arguments, value))

    async def send_tool_failed(self, call: ToolCallFrame, failure: ToolFailed) -> None:
        await self.repository.send(self.frames.tool_failed(call, failure))

    async def send_decision(self, call: ToolCallFrame, verdict: Verdict) -> dict[str, Any] | None:
        """Sends the `hitl_decision`; the arguments to run the tool with, None if rejected."""
        decided = self.frames.decision(call, verdict)
        await self.repository.send(decided.frame)
        return decided.run_with

    async def send_rejected(self, call: ToolCallFrame, verdict: Verdict) -> None:
        await self.repository.send(self.frames.rejected(call, verdict))
