"""The reference Gateway: REST proxy to the runtime plus one WebSocket per session.

`uvicorn --factory reference.gateway.app:create_app` builds its settings from SESSIONLAB_*
variables when the factory is called; nothing here reads configuration at import.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from contract import __version__
from contract.bodies import Health
from contract.routes import HEALTH
from reference.asgi_guards import KEY_HEADER, BodyLimit, DepthLimit, OriginGuard
from reference.errors import install_error_handlers
from reference.gateway import proxy, websocket
from reference.gateway.auth import client_key_guard
from reference.gateway.deps import DRAIN, RUNTIME_CLIENT, SETTINGS
from reference.gateway.drain import Drain
from reference.gateway.upstream import Upstream
from reference.gateway.users import UserGuard, redact_server_logs
from reference.server import ServerLimits, attach_limits
from reference.settings import GatewaySettings

SERVICE = "sessionlab-gateway"


def runtime_client(settings: GatewaySettings) -> Upstream:
    """The pooled client to the runtime, carrying the internal key on every call (G-PROXY-2)."""
    headers = {}
    if settings.internal_key is not None:
        headers[KEY_HEADER.decode()] = settings.internal_key.get_secret_value()
    # A refused or silent runtime must turn into a 503 well within G-DOWN-1's 10 s.
    return Upstream(
        str(settings.runtime_url),
        headers=headers,
        connect_timeout=settings.connect_timeout,
        request_timeout=settings.request_timeout,
    )


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    if settings is None:
        # Only for `uvicorn --factory`, which calls the factory with no arguments.
        settings = GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # On the app as well: whoever stops the server (`sessionlab serve`) drains it first.
        app.state.drain = drain = Drain()
        async with runtime_client(settings) as client:
            yield {RUNTIME_CLIENT: client, SETTINGS: settings, DRAIN: drain}

    app = FastAPI(title="sessionlab reference gateway", version=__version__, lifespan=lifespan)
    install_error_handlers(app)

    @app.get(HEALTH.template)
    async def health() -> Health:
        # Answers without the runtime: it says the gateway is up, not that the stack is.
        return Health(status="healthy", service=SERVICE, version=__version__)

    app.include_router(websocket.router)
    # Innermost: every HTTP request but the health check goes to the runtime from here.
    app.add_middleware(proxy.RestProxy)
    # A body is read whole only once the keys let the request in.
    app.add_middleware(DepthLimit)
    if settings.user_tokens:
        app.add_middleware(UserGuard, tokens=settings.user_tokens)
        redact_server_logs()
    if settings.client_key is not None:
        app.add_middleware(client_key_guard, client_key=settings.client_key.get_secret_value())
    # Outside the key checks: a browser's preflight carries no key, and a page of an origin not
    # allowed is refused whatever it carries.
    app.add_middleware(OriginGuard, allowed=settings.allowed_origins)
    # The proxy holds a request body in memory while it forwards it.
    app.add_middleware(BodyLimit, max_bytes=settings.max_bytes)
    attach_limits(
        app,
        ServerLimits(
            max_bytes=settings.max_bytes,
            head_timeout=settings.head_timeout,
            max_connections=settings.max_connections,
        ),
    )
    return app
