"""The reference, intact and with one extension behaviour broken (X-DEL-1, X-REN-1, X-EXP-1,
X-SRCH-1).

Each broken variant is the reference with one small ASGI wrapper around its runtime, a bug of the
kind such servers have; `tests/test_broken_extensions.py` proves that exactly the broken
requirement fails. The wrappers change only the route they break and pass everything else on.
"""

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.targets.reference_target import ReferenceTarget

_SESSION = re.compile(r"^/sessions/([^/]+)$")
_EXPORT = re.compile(r"^/sessions/[^/]+/export$")

Headers = list[tuple[bytes, bytes]]
# (status, headers, body) -> (headers, body): how a wrapper changes a whole response.
Rewrite = Callable[[int, Headers, bytes], tuple[Headers, bytes]]
Wrapper = Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]]


def intact() -> ReferenceTarget:
    """The reference as it is: it claims the extension profiles and must pass their checks."""
    return ReferenceTarget()


def _broken(wrapper: Wrapper) -> ReferenceTarget:
    """The reference whose runtime runs every HTTP request through `wrapper`."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def broken(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            await wrapper(scope, receive, send, app)

        return broken

    return ReferenceTarget(runtime_wrapper=wrap)


def _rewriting(send: Send, rewrite: Rewrite) -> Send:
    """A `send` that holds the response until its last body part, then lets `rewrite` change
    it; Content-Length follows the new body."""
    start: Message | None = None
    parts: list[bytes] = []

    async def rewriting(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        parts.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        headers, body = rewrite(start["status"], list(start["headers"]), b"".join(parts))
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return rewriting


def _json_rewrite(change: Callable[[dict[str, Any]], None]) -> Rewrite:
    """A rewrite that lets `change` edit a successful JSON object body in place."""

    def rewrite(status: int, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        if status >= 300:
            return headers, body
        try:
            data = json.loads(body)
        except ValueError:
            return headers, body
        if not isinstance(data, dict):
            return headers, body
        change(data)
        return headers, json.dumps(data).encode()

    return rewrite


async def _whole_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app `body` as the request, then the client's own events (its
    disconnect), as the server would."""
    sent = False

    async def replaying() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying


def _query(scope: Scope, name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


# X-DEL-1


def delete_leaves_the_session_listed() -> ReferenceTarget:
    """DELETE answers 204 and the session is gone from its history, but the list still shows
    it: a cache of list entries that a delete does not invalidate."""
    cached: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()

    def serve_stale(data: dict[str, Any]) -> None:
        sessions = data.get("sessions")
        if not isinstance(sessions, list):
            return
        present = {entry.get("session_id") for entry in sessions}
        for entry in sessions:
            cached[entry["session_id"]] = entry
        stale = [cached[sid] for sid in sorted(deleted) if sid in cached and sid not in present]
        sessions.extend(stale)
        data["total"] = len(sessions)

    async def wrapper(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        target = _SESSION.match(scope["path"])
        if scope["method"] == "DELETE" and target is not None:

            async def noting(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] == 204:
                    deleted.add(target.group(1))
                await send(message)

            await app(scope, receive, noting)
            return
        if scope["method"] == "GET" and scope["path"] == "/sessions":
            send = _rewriting(send, _json_rewrite(serve_stale))
        await app(scope, receive, send)

    return _broken(wrapper)


# X-REN-1


def rename_ignores_the_title() -> ReferenceTarget:
    """PATCH answers 200, but the title shows nowhere, not in its answer and not in the list:
    a server that takes the field and drops it."""

    def drop_title(data: dict[str, Any]) -> None:
        data["title"] = None

    def drop_titles(data: dict[str, Any]) -> None:
        for entry in data.get("sessions", []):
            entry["title"] = None

    async def wrapper(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if scope["method"] == "PATCH" and _SESSION.match(scope["path"]):
            send = _rewriting(send, _json_rewrite(drop_title))
        elif scope["method"] == "GET" and scope["path"] == "/sessions":
            send = _rewriting(send, _json_rewrite(drop_titles))
        await app(scope, receive, send)

    return _broken(wrapper)


def rename_accepts_an_empty_title() -> ReferenceTarget:
    """An empty title is not refused but falls back to the session id, as a UI might show it;
    an over-long title is still refused."""

    async def wrapper(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        target = _SESSION.match(scope["path"])
        if scope["method"] == "PATCH" and target is not None:
            body = await _whole_body(receive)
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("title") == "":
                body = json.dumps({**data, "title": target.group(1)}).encode()
            receive = _replaying(body, receive)
        await app(scope, receive, send)

    return _broken(wrapper)


# X-EXP-1


def markdown_export_served_as_text_plain() -> ReferenceTarget:
    """The markdown transcript is right, but it comes as text/plain."""

    def relabel(status: int, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        kept = [(k, v) for k, v in headers if k.lower() != b"content-type"]
        return [*kept, (b"content-type", b"text/plain; charset=utf-8")], body

    async def wrapper(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if _EXPORT.match(scope["path"]) and _query(scope, "format") == "markdown":
            send = _rewriting(send, relabel)
        await app(scope, receive, send)

    return _broken(wrapper)


def markdown_export_drops_the_last_message() -> ReferenceTarget:
    """The markdown transcript stops one message short: an off-by-one over the messages."""

    def cut(status: int, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        # Each message is a block opening with a bold speaker line, `**User**`.
        last = body.rfind(b"\n**")
        return headers, body[: last + 1] if status == 200 and last >= 0 else body

    async def wrapper(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if _EXPORT.match(scope["path"]) and _query(scope, "format") == "markdown":
            send = _rewriting(send, cut)
        await app(scope, receive, send)

    return _broken(wrapper)


# X-SRCH-1


def search_is_case_sensitive() -> ReferenceTarget:
    """Search matches the text only as typed: a hit whose snippet lacks the query in its exact
    case is dropped."""

    async def wrapper(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if scope["method"] == "GET" and scope["path"] == "/sessions/search":
            query = _query(scope, "q") or ""

            def exact(data: dict[str, Any]) -> None:
                hits = [hit for hit in data.get("results", []) if query in hit.get("snippet", "")]
                data["results"], data["total"] = hits, len(hits)

            send = _rewriting(send, _json_rewrite(exact))
        await app(scope, receive, send)

    return _broken(wrapper)


def search_lists_oldest_first() -> ReferenceTarget:
    """Search finds the right sessions but lists the least recently active first."""

    def oldest_first(data: dict[str, Any]) -> None:
        data["results"] = list(reversed(data.get("results", [])))

    async def wrapper(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if scope["method"] == "GET" and scope["path"] == "/sessions/search":
            send = _rewriting(send, _json_rewrite(oldest_first))
        await app(scope, receive, send)

    return _broken(wrapper)
