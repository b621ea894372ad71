"""Where the simulated IDE talks to, with what keys, and how long it waits for each call."""

import os
from dataclasses import dataclass, field

# One knob for every deadline of the simulator, for a slow or loaded machine.
TIMEOUT_SCALE = float(os.environ.get("SESSIONLAB_TIMEOUT_SCALE", "1"))


@dataclass(frozen=True)
class IdeSettings:
    gateway_url: str = "http://localhost:8000"
    client_key: str | None = None
    # Extra headers on every call and socket (e.g. a user's bearer token).
    headers: dict[str, str] = field(default_factory=dict)
    request_timeout: float = 10.0
    connect_timeout: float = 5.0
    turn_timeout: float = 30.0

    def scaled(self, seconds: float) -> float:
        return seconds * TIMEOUT_SCALE

    @property
    def rest_headers(self) -> dict[str, str]:
        key = {"X-Internal-Auth": self.client_key} if self.client_key else {}
        return {**key, **self.headers}

    @property
    def ws_base(self) -> str:
        """C-WS-1: the gateway base with http -> ws."""
        url = self.gateway_url.rstrip("/")
        if url.startswith("https://"):
            return "wss://" + url.removeprefix("https://")
        return "ws://" + url.removeprefix("http://")
