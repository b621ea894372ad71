"""Ide: one simulated IDE, driven step by step (open the panel, new session, switch, send,
restart ...), behaving as the client model its settings name (`designed` or `shipped`).

Every call leaves trace events named by flow step and client behaviour ID, so a failure reads
"switch step 8: the WebSocket did not reconnect to session_…".
"""

import asyncio
from pathlib import Path
from typing import Any

from contract.bodies import History
from simulators.ide.approvals import ApprovalPolicy, AskTheTester, Verdict
from simulators.ide.chat import Chat, Outcome
from simulators.ide.clients import MODELS
from simulators.ide.gateway_api import GatewayApi
from simulators.ide.gateway_service import GatewayService
from simulators.ide.preferences import Preferences
from simulators.ide.protocol_service import AgentProtocolService
from simulators.ide.restore_service import SessionRestoreService
from simulators.ide.session_manager import SessionManager
from simulators.ide.settings import IdeSettings
from simulators.ide.tools import FakeWorkspace, ToolExecutor
from simulators.ide.trace import CREATE, INIT, SWITCH, Trace
from simulators.ide.websocket_repository import SocketError, WebSocketRepository


class IdeError(Exception):
    """What the user would see go wrong; the message names the flow step."""


class Ide:
    def __init__(
        self,
        settings: IdeSettings,
        preferences: Path,
        executor: ToolExecutor | None = None,
        policy: ApprovalPolicy | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.settings = settings
        self.model = model = MODELS[settings.client]
        self.preferences_path = preferences
        self.preferences = Preferences(preferences)
        self.trace = trace or Trace(secrets=list(model.rest.headers(settings).values()))
        self.workspace = executor or FakeWorkspace()
        self.policy = policy or AskTheTester()
        self.api = GatewayApi(settings, self.trace, model.rest)
        self.gateway = GatewayService(self.api)
        self.restore = SessionRestoreService(
            self.gateway, self.preferences, self.trace, model.restore
        )
        self.manager = SessionManager(self.restore, self.trace, model.sessions)
        self.repository = WebSocketRepository(
            settings, self.trace, model.socket, self._on_text, self._on_socket_closed
        )
        self.protocol = AgentProtocolService(
            self.repository, model.frames_out, names_messages=settings.idempotent
        )
        self.chat = Chat(
            self.protocol, self.workspace, self.policy, self.trace, model.frames_in, model.view
        )
        self.current_session_id: str | None = None

    async def _on_text(self, text: str) -> None:
        await self.chat.on_text(text)

    def _on_socket_closed(self, reason: str) -> None:
        self.chat.socket_closed(reason)

    # What the scenario runner reads

    @property
    def state(self) -> str:
        return self.manager.state

    @property
    def connected_session_id(self) -> str | None:
        return self.repository.session_id if self.repository.connected else None

    @property
    def closed_session_ids(self) -> list[str]:
        return self.repository.closed_session_ids

    @property
    def errors(self) -> list[str]:
        return self.chat.errors

    @property
    def last_create_body(self) -> dict[str, Any] | None:
        """The body of the last `POST /sessions` that made a session."""
        return self.restore.last_create_body

    @property
    def stored_session_id(self) -> str | None:
        return self.preferences.current_session_id

    @property
    def stored_agent_type(self) -> str | None:
        return self.preferences.last_agent_type

    def trace_tail(self, count: int) -> list[str]:
        return self.trace.tail(count)

    def put_file(self, path: str, content: str) -> None:
        if isinstance(self.workspace, FakeWorkspace):
            self.workspace.files[path] = content

    # Flows

    async def _load_history(self, flow: str, session_id: str, history: History | None) -> None:
        """Steps 7-9 of both flows: chat shown, then (and only then) the socket (C-WS-2)."""
        self.chat.show_history(history)
        count = history.message_count if history else 0
        self.trace.step(flow, 7, f"chat shows {session_id} with {count} messages", "C-CHAT-1")
        previous = self.repository.session_id if self.repository.connected else None
        try:
            await self.protocol.reconnect(session_id)
        except SocketError as exc:
            self.trace.step(
                flow, 8, f"the WebSocket did not connect to {session_id}: {exc}", "C-WS-2", ok=False
            )
            self.chat.errors.append(str(exc))
            return
        closed = f" (closed {previous})" if previous else ""
        self.trace.step(flow, 8, f"WebSocket connected to {session_id}{closed}", "C-WS-2")
        self.trace.step(flow, 9, "ready")

    async def open_panel(self) -> None:
        """The assistant panel opens on the session list: `GET /sessions`, no socket."""
        self.trace.step(INIT, None, "panel opened on the session list")
        await self.manager.reload()

    async def back_to_list(self) -> None:
        """The user goes back to the session list; the socket stays as it is."""
        self.trace.step(SWITCH, None, "user goes back to the session list")
        await self.manager.reload()

    async def new_session(self) -> str:
        self.trace.step(CREATE, 1, "user clicks New Session")
        session_id = await self.manager.create_new_session()
        self.current_session_id = session_id
        await self._load_history(CREATE, session_id, None)
        return session_id

    async def switch_to(self, session_id: str) -> None:
        self.trace.step(SWITCH, 1, f"user picks {session_id}")
        history = await self.manager.switch_to_session(session_id)
        if history is None:
            raise IdeError(
                f"switch step 3: the history of {session_id} did not load: {self.manager.error}"
            )
        self.current_session_id = session_id
        await self._load_history(SWITCH, self.model.restore.socket_id(session_id, history), history)

    async def start(self) -> str | None:
        """IDE start-up. Designed (C-INIT-1): restore the stored session, or make one, and return
        its id. Shipped: nothing calls that restore, so the panel just opens (None)."""
        if not self.model.restore.restores_at_start:
            await self.open_panel()
            return None
        session_id, history = await self.restore.restore()
        self.current_session_id = session_id
        self.manager.state = "loaded" if history is not None else "newSessionCreated"
        await self._load_history(INIT, session_id, history)
        return session_id

    async def restart(self) -> None:
        """Close the IDE and open it again on the same preferences file."""
        await self.close()
        fresh = Ide(self.settings, self.preferences_path, self.workspace, self.policy, self.trace)
        self.__dict__.update(fresh.__dict__)
        self.trace.step(INIT, None, "IDE restarted")
        await self.start()

    async def close(self) -> None:
        await self.chat.close()
        await self.repository.disconnect()
        await self.api.close()

    # Chat

    async def send(self, text: str) -> None:
        self.chat.turn_started(text)
        try:
            await self.protocol.send_user_message(text)
        except SocketError as exc:
            # Once per turn, whether the send or the reader hears of the close first.
            self.chat.socket_closed(str(exc))

    async def switch_agent(self, agent: str, content: str) -> None:
        self.chat.turn_started()
        try:
            await self.protocol.send_switch_agent(agent, content)
        except SocketError as exc:
            self.chat.socket_closed(str(exc))

    async def _outcome(self) -> Outcome:
        async with asyncio.timeout(self.settings.scaled(self.settings.turn_timeout)):
            return await self.chat.outcomes.get()

    async def final_reply(self) -> str:
        try:
            outcome = await self._outcome()
        except TimeoutError:
            raise IdeError("no final reply within the turn timeout") from None
        if outcome.kind == "error":
            raise IdeError(f"the turn ended in an error: {outcome.text}")
        return outcome.text

    async def next_error(self) -> str:
        outcome = await self._outcome()
        if outcome.kind != "error":
            raise IdeError(f"a reply came instead of an error: {outcome.text!r}")
        return outcome.text

    async def next_tool_call(self) -> dict[str, Any]:
        async with asyncio.timeout(self.settings.scaled(self.settings.turn_timeout)):
            call = await self.chat.tool_calls.get()
        return call.model_dump()

    async def decide(
        self, decision: str, arguments: dict[str, Any] | None, feedback: str | None
    ) -> None:
        if not isinstance(self.policy, AskTheTester):
            raise IdeError("this IDE decides approvals by itself")
        self.policy.give(Verdict(decision, arguments, feedback))  # type: ignore[arg-type]
