"""SessionManager: the session list screen's states, as each client model's bloc has them."""

from dataclasses import dataclass, field
from typing import Literal

from contract.bodies import History, SessionInfo
from simulators.ide.gateway_service import GatewayError
from simulators.ide.restore_service import SessionRestoreService
from simulators.ide.trace import CREATE, SWITCH, Trace

State = Literal["initial", "loading", "loaded", "newSessionCreated", "sessionSwitched", "error"]


@dataclass(frozen=True)
class ManagerPolicy:
    # The design note's bloc ends a create or switch in its own state; the shipped bloc queues a
    # list reload after both, so it ends where that reload ends (`loaded` or `error`).
    ends_in_list_state: bool
    # The shipped bloc reloads the list after a local fallback too (and that reload then fails).
    reloads_after_local_create: bool


DESIGNED_MANAGER = ManagerPolicy(ends_in_list_state=False, reloads_after_local_create=False)
SHIPPED_MANAGER = ManagerPolicy(ends_in_list_state=True, reloads_after_local_create=True)


@dataclass
class SessionManager:
    restore: SessionRestoreService
    trace: Trace
    policy: ManagerPolicy
    state: State = "initial"
    sessions: list[SessionInfo] = field(default_factory=list)
    error: str | None = None

    async def reload(self) -> None:
        """`GET /sessions`: `loaded`, or `error` when the list does not load."""
        self.state = "loading"
        try:
            self.sessions = (await self.restore.gateway.list_sessions()).sessions
        except GatewayError as exc:
            self.trace.step("list", None, f"the list did not load: {exc}", ok=False)
            self.state, self.error = "error", str(exc)
            return
        self.trace.step("list", None, f"the list shows {len(self.sessions)} sessions")
        self.state = "loaded"

    def _ended(self, own: State) -> None:
        # The list is a view for the design note's bloc: failing to refresh it leaves the
        # session usable and the flow's own end state stands.
        if not self.policy.ends_in_list_state:
            self.state = own

    async def create_new_session(self) -> str:
        self.trace.step(CREATE, 2, "SessionManager createNewSession")
        self.state = "loading"
        created = await self.restore.create_new_session()
        self.state = "newSessionCreated"
        if not created.local or self.policy.reloads_after_local_create:
            await self.reload()
        self._ended("newSessionCreated")
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
        self.state = "sessionSwitched"
        await self.reload()
        self._ended("sessionSwitched")
        return history
