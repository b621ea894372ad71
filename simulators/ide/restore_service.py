"""SessionRestoreService: create with a local fallback (C-CREATE), switch (C-SWITCH), restore
at start-up (C-INIT-1), keeping the preferences in step."""

from dataclasses import dataclass
from typing import Any

from contract.bodies import History
from contract.ids import new_local_session_id
from simulators.ide.gateway_service import GatewayError, GatewayService
from simulators.ide.preferences import Preferences
from simulators.ide.trace import CREATE, INIT, SWITCH, Trace


@dataclass(frozen=True)
class RestorePolicy:
    # The shipped client has the restore but, at that commit, nothing calls it.
    restores_at_start: bool
    # The shipped client keeps the history's `current_agent` as the last agent on a switch.
    agent_from_history: bool
    # The shipped client opens the socket to the history reply's `session_id`, not the clicked id.
    socket_to_reply_id: bool

    def socket_id(self, clicked: str, history: History) -> str:
        return history.session_id if self.socket_to_reply_id else clicked


DESIGNED_RESTORE = RestorePolicy(
    restores_at_start=True, agent_from_history=False, socket_to_reply_id=False
)
SHIPPED_RESTORE = RestorePolicy(
    restores_at_start=False, agent_from_history=True, socket_to_reply_id=True
)


@dataclass(frozen=True)
class Created:
    session_id: str
    local: bool


class SessionRestoreService:
    def __init__(
        self,
        gateway: GatewayService,
        preferences: Preferences,
        trace: Trace,
        policy: RestorePolicy,
    ) -> None:
        self.gateway = gateway
        self.preferences = preferences
        self.trace = trace
        self.policy = policy
        self.last_create_body: dict[str, Any] | None = None

    async def create_new_session(self) -> Created:
        try:
            body = await self.gateway.create_session()
            session_id = str(body["session_id"])
            self.last_create_body = body
            self.trace.step(CREATE, 3, f"POST /sessions made {session_id}", "C-CREATE-1")
            local = False
        except GatewayError as exc:
            session_id = new_local_session_id()
            self.trace.step(
                CREATE,
                3,
                f"the gateway failed ({exc}); local id {session_id}",
                "C-CREATE-2",
                ok=False,
            )
            local = True
        self.preferences.store_session(session_id)
        self.trace.step(CREATE, 6, f"stored {session_id} in the preferences", "C-CREATE-1")
        return Created(session_id, local)

    async def switch_to_session(self, session_id: str) -> History:
        history = await self.gateway.get_history(session_id)
        self.trace.step(SWITCH, 5, f"history of {session_id}: {history.message_count} messages")
        agent = self.preferences.last_agent_type or "orchestrator"
        if self.policy.agent_from_history and history.current_agent is not None:
            agent = history.current_agent
        self.preferences.store_session(session_id, agent)
        self.trace.step(SWITCH, 6, f"stored {session_id} in the preferences", "C-SWITCH-1")
        return history

    async def restore(self) -> tuple[str, History | None]:
        """C-INIT-1: the stored session if its history loads, else a new one."""
        stored = self.preferences.current_session_id
        if stored is not None:
            try:
                history = await self.gateway.get_history(stored)
            except GatewayError as exc:
                self.trace.step(INIT, None, f"stored {stored} not restored: {exc}", "C-INIT-1")
            else:
                self.trace.step(INIT, None, f"restored {stored}", "C-INIT-1")
                return stored, history
        created = await self.create_new_session()
        return created.session_id, None
