"""Small ASGI wrappers that break one behaviour of a reference service, for the broken servers."""

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Wrapper = Callable[[ASGIApp], ASGIApp]
Matcher = Callable[[str, str], bool]  # (method, path) -> applies


def rewrite_http(matches: Matcher, rewrite: Callable[[int, bytes], tuple[int, bytes]]) -> Wrapper:
    """Buffer matching HTTP responses and rewrite their status and body."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not matches(scope["method"], scope["path"]):
                await app(scope, receive, send)
                return
            start: dict[str, Any] = {}
            chunks: list[bytes] = []

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    start.update(message)
                    return
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                status, body = rewrite(start["status"], b"".join(chunks))
                headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})

            await app(scope, receive, capture)

        return wrapped

    return wrap


def rewrite_json(matches: Matcher, change: Callable[[Any], Any]) -> Wrapper:
    def rewrite(status: int, body: bytes) -> tuple[int, bytes]:
        if status >= 300:
            return status, body
        return status, json.dumps(change(json.loads(body))).encode()

    return rewrite_http(matches, rewrite)


def answer(matches: Matcher, status: int, body: Any) -> Wrapper:
    """Answer matching HTTP requests itself, never reaching the service."""
    payload = json.dumps(body).encode()

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and matches(scope["method"], scope["path"]):
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": payload})
                return
            await app(scope, receive, send)

        return wrapped

    return wrap


def header_of(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope.get("headers", []) if k.lower() == name), None)


def when(predicate: Callable[[Scope], bool], inner: Wrapper) -> Wrapper:
    """Apply `inner` only to the requests the predicate picks."""

    def wrap(app: ASGIApp) -> ASGIApp:
        broken = inner(app)

        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            await (broken if predicate(scope) else app)(scope, receive, send)

        return wrapped

    return wrap


def log_header(name: bytes, logger: str) -> Wrapper:
    """Log a request header's value at debug level: a leak only a full log shows."""
    log = logging.getLogger(logger)

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                log.debug(
                    "request %s with %s=%s", scope["path"], name.decode(), header_of(scope, name)
                )
            await app(scope, receive, send)

        return wrapped

    return wrap


SocketRewrite = Callable[[Message, Send], Awaitable[bool]]  # True: handled, do not pass on


def intercept_socket(
    outgoing: SocketRewrite | None = None,
    incoming: Callable[[Message, Send], Awaitable[bool]] | None = None,
) -> Wrapper:
    """Look at every WebSocket message each way; a handler returning True swallows it."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "websocket":
                await app(scope, receive, send)
                return

            async def send_out(message: Message) -> None:
                if outgoing is None or not await outgoing(message, send):
                    await send(message)

            async def receive_in() -> Message:
                while True:
                    message = await receive()
                    if incoming is None or not await incoming(message, send):
                        return message

            await app(scope, receive_in, send_out)

        return wrapped

    return wrap
