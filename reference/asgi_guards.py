"""Small ASGI middlewares the reference services use: key check, body size and depth limits,
allowed origins."""

import hmac
import json
from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.routes import HEALTH
from reference.json_limits import TOO_DEEP, nests_too_deep_async

# The paths every service answers without a key: its health check and its API docs.
OPEN_PATHS = frozenset(
    {HEALTH.template, "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
)
KEY_HEADER = b"x-internal-auth"


async def send_json(send: Send, status: int, body: dict[str, object]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def keys_match(offered: bytes | None, expected: bytes) -> bool:
    # compare_digest takes the same time wherever the first difference is (R-AUTH-2).
    return offered is not None and hmac.compare_digest(offered, expected)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


class KeyGuard:
    """Refuses HTTP requests without the right X-Internal-Auth before any route runs."""

    def __init__(
        self,
        app: ASGIApp,
        key: bytes,
        open_paths: Collection[str] = OPEN_PATHS,
        guards_path: Callable[[str], bool] = lambda _path: True,
    ) -> None:
        self.app = app
        self.key = key
        self.open_paths = open_paths
        self.guards_path = guards_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            guarded = path not in self.open_paths and self.guards_path(path)
            if guarded and not keys_match(_header(scope, KEY_HEADER), self.key):
                await send_json(send, 401, {"detail": "unauthorized", "error": "unauthorized"})
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Answers 413 JSON for a body over the limit, by header or as it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, self._too_large())
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await send_json(send, 413, self._too_large())

    def _too_large(self) -> dict[str, object]:
        return {"error": f"request body over {self.max_bytes} bytes"}


class _BodyTooLarge(Exception):
    pass


class DepthLimit:
    """Answers 422 JSON for a request body nested deeper than the limit, before any route parses
    it (a parser would recurse once per level and fail with a RecursionError, a 500)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # Gone before its body arrived: the route learns it as it would have.
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if await nests_too_deep_async(body):
            await send_json(send, 422, {"error": TOO_DEEP, "detail": TOO_DEEP})
            return
        whole: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(first: list[Message], then: Receive) -> Receive:
    async def receive() -> Message:
        return first.pop(0) if first else await then()

    return receive


CORS_METHODS = b"GET, POST, PATCH, DELETE, OPTIONS"
CORS_HEADERS = b"authorization, content-type, x-internal-auth"


class OriginGuard:
    """A browser page may call the service only from an allowed origin.

    A WebSocket upgrade carrying an `Origin` not in the list is refused with 403 before it is
    accepted: a page in the user's browser could otherwise chat as the user. A request without an
    `Origin` (the desktop IDE, any client that is not a browser) is not affected. REST follows the
    same list: an allowed origin gets CORS headers (and its preflight a 204), any other a 403.
    """

    def __init__(self, app: ASGIApp, allowed: Collection[str]) -> None:
        self.app = app
        self.allowed = frozenset(origin.rstrip("/").encode() for origin in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if origin not in self.allowed:
            refusal: dict[str, object] = {
                "error": f"origin not allowed: {origin.decode('latin-1')[:200]}"
            }
            if scope["type"] == "websocket":
                await _refuse_upgrade(send, refusal)
            else:
                await send_json(send, 403, refusal)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        cors = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            preflight = [
                *cors,
                (b"access-control-allow-methods", CORS_METHODS),
                (b"access-control-allow-headers", CORS_HEADERS),
                (b"access-control-max-age", b"600"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": preflight})
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, with_cors)


async def _refuse_upgrade(send: Send, body: dict[str, object]) -> None:
    """403 instead of the upgrade (the ASGI denial response), before anything is accepted."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": payload})
