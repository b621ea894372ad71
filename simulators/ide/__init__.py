"""The IDE side of the protocol, layer by layer as the design note builds it.

GatewayApi (HTTP) -> GatewayService (typed errors) -> SessionRestoreService (preferences, local
fallback) -> SessionManager (states) ; WebSocketRepository -> AgentProtocolService -> Chat (the
agent bloc: deferred connect, history to chat items, tool calls, approvals). `Ide` drives them all.
"""

from simulators.ide.driver import Ide, IdeError
from simulators.ide.settings import IdeSettings

__all__ = ["Ide", "IdeError", "IdeSettings"]
