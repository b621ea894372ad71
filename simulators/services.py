"""The services the simulators work against, in the simulators' own terms: a gateway to reach,
and a gateway and runtime that may be stopped, killed or paused.

Nothing here knows how a target is started or described: a started target's `Endpoints` and its
`TargetRunner` (conformance) are a `Gateway` and a nemesis's target as they are, structurally.
The names of the services and of what may be done to them are defined here, below both, so that
the targets and the nemesis speak of them alike.
"""

from enum import StrEnum
from typing import Literal, Protocol

Service = Literal["gateway", "runtime"]


class Capability(StrEnum):
    """What sessionlab may do to one service of a target."""

    STOP = "stop"  # graceful stop (SIGTERM) and start again
    KILL = "kill"  # SIGKILL, then start again
    PAUSE = "pause"  # SIGSTOP / SIGCONT: up but silent
    LOGS = "logs"  # read the service's log lines


class Gateway(Protocol):
    """Where a running target's gateway answers, and what its clients send it."""

    @property
    def gateway_url(self) -> str: ...

    @property
    def client_key(self) -> str | None: ...

    def client_headers(self) -> dict[str, str]: ...

    def socket_headers(self) -> dict[str, str]: ...
