"""Where the simulated IDE talks to, with what keys, how long it waits, and which client it is."""

import os
from dataclasses import dataclass, field
from typing import Literal

# One knob for every deadline of the simulator, for a slow or loaded machine.
TIMEOUT_SCALE = float(os.environ.get("SESSIONLAB_TIMEOUT_SCALE", "1"))

Client = Literal["designed", "shipped"]
# `designed`: the client the design note intends. `shipped`: the real IDE's client as its public
# source has it (docs/client-fidelity.md lists every difference).
CLIENTS: tuple[Client, ...] = ("designed", "shipped")


@dataclass(frozen=True)
class IdeSettings:
    gateway_url: str = "http://localhost:8000"
    # Keys and tokens stay out of the repr: settings show up in tracebacks.
    client_key: str | None = field(default=None, repr=False)
    # Extra headers on every call and socket (e.g. a user's bearer token).
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    request_timeout: float = 10.0
    connect_timeout: float = 5.0
    # The bound of the tester's waits (final_reply, next_tool_call ...), not a deadline the
    # simulated IDE keeps: the shipped client has none.
    turn_timeout: float = 30.0
    client: Client = "designed"
    # The target claims profile `idempotent` (X-IDEM-1): the designed client names each
    # user_message with a client_message_id, and sends it again under that name when its socket
    # drops before the turn ended. The shipped client has no ids, whatever this says.
    idempotent: bool = False

    def scaled(self, seconds: float) -> float:
        return seconds * TIMEOUT_SCALE

    @property
    def ws_base(self) -> str:
        """C-WS-1: the gateway base with http -> ws."""
        url = self.gateway_url.rstrip("/")
        if url.startswith("https://"):
            return "wss://" + url.removeprefix("https://")
        return "ws://" + url.removeprefix("http://")
