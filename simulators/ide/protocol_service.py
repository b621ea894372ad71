"""AgentProtocolService: the protocol's frames, written as the client model writes them, over the
repository's socket."""

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

from contract.frames import ToolCallFrame
from simulators.ide.approvals import Verdict
from simulators.ide.frames_out import Frame, FramesOut
from simulators.ide.tools import ToolFailed
from simulators.ide.websocket_repository import SocketError, WebSocketRepository

# Seconds between attempts to reopen a dropped socket for a resend: a restarting gateway takes
# a moment to listen again.
REOPEN_PAUSE = 0.2


class AgentProtocolService:
    def __init__(
        self, repository: WebSocketRepository, frames: FramesOut, names_messages: bool = False
    ) -> None:
        self.repository = repository
        self.frames = frames
        # X-IDEM-1: each user_message gets a client_message_id (if the model writes one).
        self.names_messages = names_messages
        # The named user_message whose turn has not ended: what a resend sends again.
        self.unanswered: Frame | None = None

    def answered(self) -> None:
        """The turn of the last user_message ended: there is nothing to send again."""
        self.unanswered = None

    async def resend_unanswered(self, before_send: Callable[[], None] | None = None) -> None:
        """X-IDEM-1: reopen the socket to the same session and send the unanswered message again,
        under its name, so the server answers it with the reply it stored (if it stored one).
        `before_send` runs once the old socket is gone and before the resend goes: nothing of the
        old answer can come after it. SocketError when no socket opens within the connect
        timeout."""
        frame = self.unanswered
        session_id = self.repository.session_id
        if frame is None or session_id is None:
            raise SocketError("no message is waiting for its reply")
        settings = self.repository.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.scaled(settings.connect_timeout)
        while True:
            try:
                await self.repository.reconnect(session_id)
                break
            except SocketError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(REOPEN_PAUSE)
        if before_send is not None:
            before_send()
        await self.repository.send(frame)

    async def reconnect(self, session_id: str) -> None:
        await self.repository.reconnect(session_id)

    async def disconnect(self) -> None:
        await self.repository.disconnect()

    async def send_user_message(self, content: str) -> None:
        name = secrets.token_hex(16) if self.names_messages else None
        frame = self.frames.user_message(content, name)
        # Before the send: a send that fails is resent under the same name as well.
        self.unanswered = frame if "client_message_id" in frame else None
        await self.repository.send(frame)

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
