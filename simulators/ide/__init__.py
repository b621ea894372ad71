"""The IDE side of the protocol, layer by layer as the client builds it, in two client models.

GatewayApi (HTTP) -> GatewayService (typed errors) -> SessionRestoreService (preferences, local
fallback) -> SessionManager (states) ; WebSocketRepository -> AgentProtocolService -> Chat (the
agent bloc: deferred connect, history to chat items, tool calls, approvals). `Ide` drives them all.

`IdeSettings.client` picks the model: `designed`, the client the design note intends, or
`shipped`, the real IDE's client as its public source has it (lenient frame reader, every field
written out, no restore at start-up, no reconnect after a drop ...). Each difference is one policy
of its concern's module (rest_policy, restore_service, session_manager, websocket_repository,
frames_out, frames_in, chat_view), gathered per model in `clients`; docs/client-fidelity.md lists
them against the real client's files. `IdeSettings.idempotent` (the target claims profile
`idempotent`) makes the designed client name each user_message and send an unanswered one again
after its socket dropped mid-turn (X-IDEM-1); the shipped client has no ids.
"""

from simulators.ide.driver import Ide, IdeError
from simulators.ide.settings import CLIENTS, IdeSettings

__all__ = ["CLIENTS", "Ide", "IdeError", "IdeSettings"]
