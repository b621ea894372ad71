"""Small ASGI middlewares both reference services use: key check and body size limit."""

import hmac
import json
from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
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
