"""Reference targets with users: the intact one, and variants that each break one requirement.

Each broken variant is the reference with one ASGI wrapper around the gateway or the runtime, a
bug of the kind such servers have; `tests/test_broken_users.py` proves that exactly the broken
requirement fails. Tokens are made per target; names are fixed so the checks can say who is who.
"""

import json
import re
import secrets
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.targets.reference_target import ReferenceTarget
from reference.users import USER_HEADER

USERS = ("ann", "ben", "cy")
_USER_HEADER = USER_HEADER.lower().encode()
_HISTORY = re.compile(r"^/sessions/[^/]+/history$")
_ACCESS = re.compile(r"^/sessions/[^/]+/access$")
_SHARES = re.compile(r"^/sessions/([^/]+)/shares$")


def user_tokens() -> dict[str, str]:
    return {user: f"{user}-{secrets.token_urlsafe(12)}" for user in USERS}


def _with_users(
    runtime_wrapper: Callable[[ASGIApp], ASGIApp] | None = None,
    gateway_wrapper: Callable[[ASGIApp], ASGIApp] | None = None,
    tokens: dict[str, str] | None = None,
) -> ReferenceTarget:
    wrappers = {}
    if runtime_wrapper is not None:
        wrappers["runtime_wrapper"] = runtime_wrapper
    if gateway_wrapper is not None:
        wrappers["gateway_wrapper"] = gateway_wrapper
    return ReferenceTarget(user_tokens=tokens or user_tokens(), **wrappers)


def intact() -> ReferenceTarget:
    """The reference with three users: claims `auth` and `sharing` and must conform."""
    return _with_users()


def _without_user_header(scope: Scope) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != _USER_HEADER]
    return {**scope, "headers": headers}


def _replace_header(scope: Scope, name: bytes, value: bytes) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != name]
    return {**scope, "headers": [*headers, (name, value)]}


def wrong_token_passes_on_one_route() -> ReferenceTarget:
    """`GET /agents` answers whatever token comes, or none (X-AUTH-1): the kind of route a
    server forgets to guard because it holds nothing private."""
    tokens = user_tokens()
    valid = {token.encode() for token in tokens.values()}
    first = f"Bearer {tokens[USERS[0]]}".encode()

    def wrap(app: ASGIApp) -> ASGIApp:
        async def broken(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == "/agents":
                offered = dict(scope["headers"]).get(b"authorization", b"")
                if offered.removeprefix(b"Bearer ") not in valid:
                    scope = _replace_header(scope, b"authorization", first)
            await app(scope, receive, send)

        return broken

    return _with_users(gateway_wrapper=wrap, tokens=tokens)


def history_readable_by_other_users() -> ReferenceTarget:
    """The runtime forgets the user on the history route, so any user reads any history
    (X-AUTH-1)."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def broken(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and _HISTORY.match(scope["path"]):
                scope = _without_user_header(scope)
            await app(scope, receive, send)

        return broken

    return _with_users(runtime_wrapper=wrap)


def _rewrite_json(send: Send, change: Callable[[dict[str, object]], None]) -> Send:
    """A `send` that lets `change` edit a JSON object response body (one body message)."""
    start: Message | None = None

    async def rewriting(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] == "http.response.body" and start is not None:
            body = message.get("body", b"")
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if isinstance(data, dict):
                change(data)
                body = json.dumps(data).encode()
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            start = None
            await send({**message, "body": body})
            return
        await send(message)

    return rewriting


def reader_can_post() -> ReferenceTarget:
    """A reader's socket is treated as the owner's and the runtime takes the turn (X-SHARE-1):
    the check for "may read" used where "may write" was needed."""

    def promote(data: dict[str, object]) -> None:
        if data.get("access") == "reader":
            data["access"] = "owner"

    def wrap(app: ASGIApp) -> ASGIApp:
        async def broken(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and _ACCESS.match(scope["path"]):
                await app(scope, receive, _rewrite_json(send, promote))
                return
            if scope["type"] == "http" and scope["path"] == "/agent/message/stream":
                scope = _without_user_header(scope)
            await app(scope, receive, send)

        return broken

    return _with_users(runtime_wrapper=wrap)


def share_opens_the_session_to_everyone() -> ReferenceTarget:
    """Once shared with anyone, a session's history is readable by every user (X-SHARE-1):
    sharing implemented as "make public"."""
    shared: set[str] = set()

    def wrap(app: ASGIApp) -> ASGIApp:
        async def broken(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            path: str = scope["path"]
            shares = _SHARES.match(path)
            if shares is not None and scope["method"] == "POST":

                async def noting(message: Message) -> None:
                    if message["type"] == "http.response.start" and message["status"] == 201:
                        shared.add(shares.group(1))
                    await send(message)

                await app(scope, receive, noting)
                return
            if _HISTORY.match(path) and path.split("/")[2] in shared:
                scope = _without_user_header(scope)
            await app(scope, receive, send)

        return broken

    return _with_users(runtime_wrapper=wrap)
