"""AgentProtocolService: the protocol's frames over the repository's socket."""

from typing import Any

from simulators.ide.websocket_repository import WebSocketRepository


class AgentProtocolService:
    def __init__(self, repository: WebSocketRepository) -> None:
        self.repository = repository

    async def reconnect(self, session_id: str) -> None:
        await self.repository.reconnect(session_id)

    async def disconnect(self) -> None:
        await self.repository.disconnect()

    async def send_user_message(self, content: str) -> None:
        await self.repository.send({"type": "user_message", "content": content, "role": "user"})

    async def send_tool_result(
        self, call_id: str, tool_name: str, result: Any, error: str | None
    ) -> None:
        frame: dict[str, Any] = {"type": "tool_result", "call_id": call_id, "tool_name": tool_name}
        frame.update({"error": error} if error is not None else {"result": result})
        await self.repository.send(frame)

    async def send_hitl_decision(
        self, call_id: str, decision: str, arguments: dict[str, Any] | None, feedback: str | None
    ) -> None:
        frame: dict[str, Any] = {"type": "hitl_decision", "call_id": call_id, "decision": decision}
        if arguments is not None:
            frame["modified_arguments"] = arguments
        if feedback is not None:
            frame["feedback"] = feedback
        await self.repository.send(frame)

    async def send_switch_agent(self, agent_type: str, content: str) -> None:
        await self.repository.send(
            {"type": "switch_agent", "agent_type": agent_type, "content": content}
        )
