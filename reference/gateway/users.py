"""User auth at the gateway (X-AUTH-1): bearer tokens on REST and sockets, the user to the runtime.

An ASGI guard rather than a route dependency, so that every HTTP path is covered, including the
proxy's own 404s and routes added later, and so that a socket is refused before any route runs.
Tokens are compared in constant time and never logged: `?token=` is cut out of the request's query
in place, before the server's access log reads it.
"""

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from reference.asgi_guards import OPEN_PATHS, send_json
from reference.users import USER_HEADER, USER_NAME

# Where the guard leaves the authenticated user for the routes (an ASGI scope extension key).
USER_SCOPE_KEY = "sessionlab.user"
NO_TOKEN = 4401
OTHER_USERS_SESSION = 4403
UNAUTHORIZED = "unauthorized: send Authorization: Bearer <token>"
_USER_HEADER = USER_HEADER.lower().encode()
_TOKEN_PARAM = b"token"


class TokenTable:
    """Token -> user, looked up without timing that depends on the tokens.

    Both sides are hashed first, so every comparison has the same length, and every token is
    compared, so the time does not say which entry (if any) matched.
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._entries = [(_digest(token), user) for token, user in tokens.items()]

    def user_for(self, offered: str | None) -> str | None:
        if not offered:
            return None
        digest = _digest(offered)
        found: str | None = None
        for expected, user in self._entries:
            if hmac.compare_digest(digest, expected):
                found = user
        return found

    def users(self) -> frozenset[str]:
        return frozenset(user for _, user in self._entries)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def bearer_token(value: bytes | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def split_token(query: bytes) -> tuple[str | None, bytes]:
    """The first `token` parameter of a query string, and the query without any `token`."""
    token: str | None = None
    kept: list[bytes] = []
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if unquote_to_bytes(name.replace(b"+", b" ")) == _TOKEN_PARAM:
            if token is None:
                token = unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8", "replace")
            continue
        kept.append(pair)
    return token, b"&".join(kept)


class UserGuard:
    """Admits a request or socket only with a known token and tells the routes whose it is."""

    def __init__(self, app: ASGIApp, tokens: Mapping[str, str]) -> None:
        self.app = app
        self.table = TokenTable(tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # Changed in place, not copied: the server logs the request from this very scope.
        query_token, scope["query_string"] = split_token(scope.get("query_string", b""))
        authorization: bytes | None = None
        headers: list[tuple[bytes, bytes]] = []
        for name, value in scope.get("headers", []):
            lowered = name.lower()
            if lowered == _USER_HEADER:
                # Only the gateway names the user to the runtime; a client's own claim is dropped.
                continue
            if lowered == b"authorization" and authorization is None:
                authorization = bytes(value)
            headers.append((name, value))
        scope["headers"] = headers
        offered = bearer_token(authorization)
        if scope["type"] == "websocket":
            # Browsers cannot set headers on a WebSocket, hence the query parameter there alone.
            user = self.table.user_for(offered if offered is not None else query_token)
            if user is None:
                await refuse_socket(receive, send, NO_TOKEN, "unauthorized")
                return
        else:
            if scope["path"] in OPEN_PATHS:
                await self.app(scope, receive, send)
                return
            user = self.table.user_for(offered)
            if user is None:
                await send_json(send, HTTPStatus.UNAUTHORIZED, {"error": UNAUTHORIZED})
                return
        scope[USER_SCOPE_KEY] = user
        await self.app(scope, receive, send)


async def refuse_socket(receive: Receive, send: Send, code: int, reason: str) -> None:
    """Accept, then close with `code`: a close before accepting reaches the client as an HTTP 403
    without any close code."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason})


class TokenRedaction(logging.Filter):
    """Blanks tokens in the server's own log lines: at debug level the WebSocket handshake is
    logged line by line, request line (`?token=`) and headers (`Authorization`) included, before
    any of the gateway's code runs."""

    _QUERY = re.compile(r"([?&]token=)[^&\s]*", re.IGNORECASE)
    _HEADER = re.compile(r"^(< authorization: ).*$", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._HEADER.sub(r"\1<redacted>", self._QUERY.sub(r"\1<redacted>", message))
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact_server_logs(logger_name: str = "uvicorn.error") -> None:
    """Put the redaction on the logger the server hands to its WebSocket protocol (once)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(existing, TokenRedaction) for existing in logger.filters):
        logger.addFilter(TokenRedaction())


def current_user(connection: HTTPConnection) -> str | None:
    """The user the guard admitted; None when user auth is off."""
    user = connection.scope.get(USER_SCOPE_KEY)
    return user if isinstance(user, str) else None


def user_headers(user: str | None) -> dict[str, str]:
    return {USER_HEADER: user} if user is not None else {}


def unknown_share_target(body: bytes, users: frozenset[str]) -> str | None:
    """Why a share request names no configured user, or None when it does (or is malformed: the
    runtime's validation answers that). Sharing with a name nobody has would hand the session to
    whoever is given that name later."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    target = data.get("user") if isinstance(data, dict) else None
    if not isinstance(target, str) or not USER_NAME.match(target) or target in users:
        return None
    return f"unknown user: {target}"
