"""The reference, intact and with its resend handling (X-IDEM-1) broken in the ways such servers
break it.

Each broken variant is the reference with one ASGI wrapper around its runtime's stream route:
the wrapper reads the stream request and decides what the reference sees of it, or answers it
itself. `tests/test_broken_idempotency.py` proves that each fails X-IDEM-1 and nothing else.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.targets.reference_target import REFERENCE_PROFILES, ReferenceTarget
from contract import sse
from contract.bodies import StreamError

STREAM = "/agent/message/stream"
# (session id, client_message_id): the key a resend shares with its first send.
Key = tuple[str, str]
# Hands a (changed) stream request on to the reference, as if the client had sent it.
PassOn = Callable[[dict[str, Any]], Awaitable[None]]
# What a broken runtime does with a stream request: its body, the key it names (if any), the way
# on to the reference, and the client's `send` for answering it itself.
Handler = Callable[[dict[str, Any], Key | None, PassOn, Send], Awaitable[None]]


def intact() -> ReferenceTarget:
    """The reference as it is: it claims `idempotent` and must pass X-IDEM-1."""
    return ReferenceTarget()


def not_claiming() -> ReferenceTarget:
    """The reference without the profile among its claims: X-IDEM-1 is skipped, unasked."""
    return ReferenceTarget(profiles=REFERENCE_PROFILES - {"idempotent"})


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


def _key(body: dict[str, Any]) -> Key | None:
    message = body.get("message")
    if not isinstance(message, dict) or message.get("type") != "user_message":
        return None
    name = message.get("client_message_id")
    session_id = body.get("session_id")
    return (session_id, name) if isinstance(name, str) and isinstance(session_id, str) else None


def _without_id(body: dict[str, Any]) -> dict[str, Any]:
    message = {k: v for k, v in body["message"].items() if k != "client_message_id"}
    return {**body, "message": message}


async def _pass_on(raw: bytes, app: ASGIApp, scope: Scope, send: Send) -> None:
    sent = False

    async def replaying() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        # The client stays for the whole answer.
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(raw)).encode()))
    await app({**scope, "headers": headers}, replaying, send)


def _stream_route(handle: Handler) -> ReferenceTarget:
    """The reference whose runtime hands each stream request to `handle`."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"] != STREAM or scope["method"] != "POST":
                await app(scope, receive, send)
                return
            raw = await _whole_body(receive)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                await _pass_on(raw, app, scope, send)
                return

            async def pass_on(changed: dict[str, Any]) -> None:
                await _pass_on(json.dumps(changed).encode(), app, scope, send)

            await handle(body, _key(body), pass_on, send)

        return wrapped

    return ReferenceTarget(runtime_wrapper=wrap)


def resend_stored_twice() -> ReferenceTarget:
    """The id is read and forgotten: every resend is a new turn, stored again."""

    async def handle(
        body: dict[str, Any],
        key: Key | None,
        pass_on: PassOn,
        _send: Send,
    ) -> None:
        await pass_on(_without_id(body) if key is not None else body)

    return _stream_route(handle)


def concurrent_resends_stored_twice() -> ReferenceTarget:
    """Looks the id up, then answers and stores, without a lock or a unique constraint: a resend
    that comes while the first send is still being answered finds nothing stored and is stored
    again. The agent takes half a second, as real ones take longer, so the sends meet."""
    in_flight: set[Key] = set()

    async def handle(
        body: dict[str, Any],
        key: Key | None,
        pass_on: PassOn,
        _send: Send,
    ) -> None:
        if key is None:
            await pass_on(body)
            return
        if key in in_flight:
            await pass_on(_without_id(body))
            return
        in_flight.add(key)
        try:
            await asyncio.sleep(0.5)
            await pass_on(body)
        finally:
            in_flight.discard(key)

    return _stream_route(handle)


def resend_refused_as_a_duplicate() -> ReferenceTarget:
    """Stores once, but answers a resend with an error ("duplicate") instead of the stored
    reply: the IDE that resent because the reply never came still has none."""
    seen: set[Key] = set()

    async def handle(
        body: dict[str, Any],
        key: Key | None,
        pass_on: PassOn,
        send: Send,
    ) -> None:
        if key is None or key not in seen:
            if key is not None:
                seen.add(key)
            await pass_on(body)
            return
        error = StreamError(error=f"duplicate client_message_id {key[1]}").model_dump()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": sse.encode_event(sse.ERROR, error)})

    return _stream_route(handle)
