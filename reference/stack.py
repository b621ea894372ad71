"""The reference stack, assembled in one place: a service's app from its settings, both services'
settings from one set of choices, and both services running in this process on free loopback
ports, the gateway pointed at the runtime.

`sessionlab serve` and its worker processes, the bench's child processes, the in-process target,
`sessionlab smoke` and the tests' fixtures all build the reference from here.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import AnyHttpUrl, SecretStr
from starlette.types import ASGIApp

from reference.server import ThreadedServer
from reference.settings import GatewaySettings, RuntimeSettings

ServiceName = Literal["runtime", "gateway"]
# Wraps a service's app, as the suite's deliberately broken variants of the reference do.
AppWrapper = Callable[[ASGIApp], ASGIApp]


def create_service_app(name: str, runtime: RuntimeSettings, gateway: GatewaySettings) -> FastAPI:
    """The app of one service ("runtime", else the gateway), from the settings of both: a
    process of `sessionlab serve` may run either."""
    from reference.gateway.app import create_app as create_gateway_app
    from reference.runtime.app import create_app as create_runtime_app

    return create_runtime_app(runtime) if name == "runtime" else create_gateway_app(gateway)


@dataclass(frozen=True)
class StackChoices:
    """What a stack in one process is made of; everything else is the services' defaults."""

    data_dir: Path
    internal_key: str
    client_key: str | None = None
    turn_timeout: float | None = None
    # token -> user, as the gateway's settings take them.
    user_tokens: Mapping[str, str] = field(default_factory=dict)
    runtime_overrides: Mapping[str, Any] = field(default_factory=dict)
    gateway_overrides: Mapping[str, Any] = field(default_factory=dict)

    def runtime_settings(self) -> RuntimeSettings:
        return RuntimeSettings(
            data_dir=self.data_dir,
            internal_key=SecretStr(self.internal_key),
            **self.runtime_overrides,
        )

    def gateway_settings(self, runtime_url: str) -> GatewaySettings:
        given: dict[str, Any] = {
            "runtime_url": AnyHttpUrl(runtime_url),
            "internal_key": SecretStr(self.internal_key),
            "client_key": SecretStr(self.client_key) if self.client_key else None,
            "user_tokens": dict(self.user_tokens),
        }
        if self.turn_timeout is not None:
            given["turn_timeout"] = self.turn_timeout
        return GatewaySettings(**given, **self.gateway_overrides)


def _unwrapped(app: ASGIApp) -> ASGIApp:
    return app


class ThreadedStack:
    """Both services on free loopback ports, each a server thread of this process.

    Started runtime first, so the gateway learns its URL; stopped gateway first, so it never
    serves a request into a runtime that is gone. Either may be stopped and started again alone
    (on the same port) while the other runs.
    """

    def __init__(
        self,
        choices: StackChoices,
        runtime_wrapper: AppWrapper | None = None,
        gateway_wrapper: AppWrapper | None = None,
    ) -> None:
        self.choices = choices
        self._runtime_wrapper = runtime_wrapper or _unwrapped
        self._gateway_wrapper = gateway_wrapper or _unwrapped
        self._servers: dict[ServiceName, ThreadedServer] = {}

    def start(self) -> "ThreadedStack":
        from reference.gateway.app import create_app as create_gateway_app
        from reference.runtime.app import create_app as create_runtime_app

        if self._servers:
            return self
        runtime_app = create_runtime_app(self.choices.runtime_settings())
        runtime = ThreadedServer(self._runtime_wrapper(runtime_app)).start()
        self._servers["runtime"] = runtime
        try:
            gateway_app = create_gateway_app(self.choices.gateway_settings(runtime.url))
            self._servers["gateway"] = ThreadedServer(self._gateway_wrapper(gateway_app)).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        names: tuple[ServiceName, ...] = ("gateway", "runtime")
        for name in names:
            server = self._servers.pop(name, None)
            if server is not None:
                server.stop()

    @property
    def started(self) -> bool:
        return bool(self._servers)

    def server(self, name: ServiceName) -> ThreadedServer:
        """One service's server; KeyError when the stack is not started."""
        return self._servers[name]

    @property
    def runtime(self) -> ThreadedServer:
        return self.server("runtime")

    @property
    def gateway(self) -> ThreadedServer:
        return self.server("gateway")

    def __enter__(self) -> "ThreadedStack":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
