"""What the gateway's routes share, handed to them as FastAPI dependencies.

Each is a coroutine though none awaits: FastAPI runs a plain function dependency in a worker
thread, a thread hop per request and per socket.
"""

from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from reference.gateway.drain import Drain
from reference.gateway.upstream import Upstream
from reference.settings import GatewaySettings

# Keys of the lifespan state (starlette copies it into every request's and socket's `state`).
RUNTIME_CLIENT = "runtime_client"
SETTINGS = "gateway_settings"
DRAIN = "gateway_drain"


async def runtime_client(connection: HTTPConnection) -> Upstream:
    """The one pooled client to the runtime, opened and closed by the app's lifespan."""
    return cast(Upstream, getattr(connection.state, RUNTIME_CLIENT))


async def gateway_settings(connection: HTTPConnection) -> GatewaySettings:
    return cast(GatewaySettings, getattr(connection.state, SETTINGS))


async def gateway_drain(connection: HTTPConnection) -> Drain:
    return cast(Drain, getattr(connection.state, DRAIN))


RuntimeClient = Annotated[Upstream, Depends(runtime_client)]
Settings = Annotated[GatewaySettings, Depends(gateway_settings)]
Draining = Annotated[Drain, Depends(gateway_drain)]
