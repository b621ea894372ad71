"""The interface every kind of target offers to the checks, scenarios and simulators."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conformance.targets.logs import LogSource

# Defined below the targets, where the simulators' nemesis names them too; re-exported here.
from simulators.services import Capability as Capability
from simulators.services import Service as Service

if TYPE_CHECKING:
    from simulators.faultproxy import FaultProxy

SERVICES: tuple[Service, ...] = ("gateway", "runtime")


class TargetError(Exception):
    """The target could not be started, reached or controlled; the message says why."""


@dataclass(frozen=True)
class Endpoints:
    """Where a running target answers. URLs carry the base path and no trailing slash."""

    gateway_url: str
    runtime_url: str | None = None
    # Keys and tokens stay out of the repr: endpoints show up in tracebacks and logs.
    client_key: str | None = field(default=None, repr=False)
    internal_key: str | None = field(default=None, repr=False)
    # User auth (X-AUTH-1): user name -> bearer token; the first user is the checks' default.
    user_tokens: dict[str, str] = field(default_factory=dict, hash=False, repr=False)

    @property
    def ws_url(self) -> str:
        if self.gateway_url.startswith("https://"):
            return "wss://" + self.gateway_url.removeprefix("https://")
        return "ws://" + self.gateway_url.removeprefix("http://")

    def client_headers(self) -> dict[str, str]:
        """What a REST client sends: the client key, and with users the first user's token."""
        headers = {"X-Internal-Auth": self.client_key} if self.client_key else {}
        return {**headers, **self.socket_headers()}

    def socket_headers(self) -> dict[str, str]:
        """What a WebSocket client sends: no key (G-AUTH-1), the first user's token if any."""
        first = next(iter(self.user_tokens), None)
        return self.user_headers(first) if first is not None else {}

    def user_headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user_tokens[user]}"}

    def runtime_headers(self) -> dict[str, str]:
        return {"X-Internal-Auth": self.internal_key} if self.internal_key else {}


class Target(ABC):
    """A gateway and runtime under test. `start()` before use, `close()` after (idempotent)."""

    name: str
    profiles: frozenset[str]
    turn_timeout: float

    @property
    @abstractmethod
    def endpoints(self) -> Endpoints: ...

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    def supports(self, service: Service, capability: Capability) -> bool:
        return False

    @property
    def runtime_hop(self) -> "FaultProxy | None":
        """The fault proxy between gateway and runtime, for targets that have one."""
        return None

    async def stop_service(self, service: Service) -> None:
        raise self._unsupported(service, Capability.STOP)

    async def start_service(self, service: Service) -> None:
        raise self._unsupported(service, Capability.STOP)

    async def kill_service(self, service: Service) -> None:
        raise self._unsupported(service, Capability.KILL)

    async def pause_service(self, service: Service) -> None:
        raise self._unsupported(service, Capability.PAUSE)

    async def resume_service(self, service: Service) -> None:
        raise self._unsupported(service, Capability.PAUSE)

    async def restart_service(self, service: Service) -> None:
        await self.stop_service(service)
        await self.start_service(service)

    def logs(self, service: Service) -> LogSource:
        raise self._unsupported(service, Capability.LOGS)

    def _unsupported(self, service: Service, capability: Capability) -> TargetError:
        return TargetError(f"target {self.name!r} cannot {capability.value} its {service}")

    async def __aenter__(self) -> "Target":
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
