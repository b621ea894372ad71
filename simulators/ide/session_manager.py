"""SessionManager: the session list screen's states, as the design note's bloc has them."""

from dataclasses import dataclass, field
from typing import Literal

from conformance.contract.bodies import History, SessionInfo
from simulators.ide.gateway_service import GatewayError
from simulators.ide.restore_service import SessionRestoreService
from simulators.ide.trace import CREATE, SWITCH, Trace

State = Literal["initial", "loading", "loaded", "newSessionCreated", "sessionSwitched", "error"]


@dataclass
class SessionManager:
    restore: SessionRestoreService
    trace: Trace
    state: State = "initial"
    sessions: list[SessionInfo] = field(default_factory=list)
    error: str | None = None

    async def reload(self) -> None:
        self.state = "loading"
        try:
            self.sessions = (await self.restore.gateway.list_sessions()).sessions
            self.state = "loaded"
        except GatewayError as exc:
            # The list is a view: failing to refresh it leaves the session usable.
            self.trace.step("list", None, f"the list did not load: {exc}", ok=False)
            self.state = "loaded"

    async def create_new_session(self) -> str:
        self.trace.step(CREATE, 2, "SessionManager createNewSession")
        self.state = "loading"
        created = await self.restore.create_new_session()
        self.state = "newSessionCreated"
        if not created.local:
            await self.reload()
            self.state = "newSessionCreated"
        return created.session_id

    async def switch_to_session(self, session_id: str) -> History | None:
        self.trace.step(SWITCH, 2, f"SessionManager switchToSession {session_id}")
        self.state = "loading"
        try:
            history = await self.restore.switch_to_session(session_id)
        except GatewayError as exc:
            self.state, self.error = "error", str(exc)
            self.trace.step(
                SWITCH, 3, f"history of {session_id} failed: {exc}", "C-SWITCH-1", ok=False
            )
            return None
        await self.reload()
        self.state = "sessionSwitched"
        return history
