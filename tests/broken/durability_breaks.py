"""The reference, intact and with its durability broken in the ways stores break it under faults.

Each variant is the in-process reference with one ASGI wrapper around its runtime; the durability
run restarts that runtime (and the gateway) and cuts the IDEs' connections while 20 IDEs chat.
`tests/test_broken_durability.py` proves that X-DUR-1 catches each with the right anomaly.
"""

import asyncio
import hashlib
import json
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.targets import Capability, Service
from conformance.targets.reference_target import REFERENCE_PROFILES, ReferenceTarget
from contract import sse
from tests.broken.idempotency_breaks import _key, _pass_on, _whole_body, _without_id

STREAM = "/agent/message/stream"
PROFILES = REFERENCE_PROFILES | {"durability"}
# How long a broken runtime keeps an acknowledged turn to itself before the store sees it.
COMMIT_DELAY = 1.5
# Seconds a slow agent takes per chunk it streams.
PACE = 0.1


def intact() -> ReferenceTarget:
    """The reference as it is, claiming durability: X-DUR-1 must pass."""
    return ReferenceTarget(profiles=PROFILES)


def not_claiming() -> ReferenceTarget:
    """The reference without the profile: X-DUR-1 is skipped, unasked."""
    return ReferenceTarget()


class _Uncontrolled(ReferenceTarget):
    def supports(self, service: Service, capability: Capability) -> bool:
        return capability is Capability.LOGS


def without_control() -> ReferenceTarget:
    """The reference claiming durability, with nothing sessionlab may do to its services (as a
    target reached by URL): X-DUR-1 is skipped with the reason."""
    return _Uncontrolled(profiles=PROFILES)


async def _discard(_message: Message) -> None:
    return None


def _echo_answer(text: str) -> bytes:
    """What the script agent streams for plain text: one chunk per word, then done."""
    words = text.split() or [""]
    last = len(words) - 1
    events = [
        sse.encode_event(
            sse.MESSAGE,
            {
                "type": "assistant_message",
                "content": word if i == last else word + " ",
                "is_final": i == last,
            },
        )
        for i, word in enumerate(words)
    ]
    return b"".join(events) + sse.encode_event(sse.DONE, {"status": "completed"})


def _on_stream(
    handle: Callable[[dict[str, Any], bytes, ASGIApp, Scope, Send], Awaitable[None]],
) -> Callable[[ASGIApp], ASGIApp]:
    """A runtime wrapper that hands each stream request (its body, parsed and raw) to `handle`."""

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
            await handle(body, raw, app, scope, send)

        return wrapped

    return wrap


def acks_before_committing() -> ReferenceTarget:
    """Streams the reply and `done` at once, and hands the turn to the store a moment later, in
    the background: a restart in that moment loses turns the IDEs were told had ended."""
    pending: set[asyncio.Task[None]] = set()

    async def handle(
        body: dict[str, Any], raw: bytes, app: ASGIApp, scope: Scope, send: Send
    ) -> None:
        message = body.get("message")
        if not isinstance(message, dict) or message.get("type") != "user_message":
            await _pass_on(raw, app, scope, send)
            return

        async def commit_later() -> None:
            await asyncio.sleep(COMMIT_DELAY)
            # What the reference answers now is no one's: the IDE had its reply.
            await _pass_on(raw, app, scope, _discard)

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        answer = _echo_answer(str(message.get("content", "")))
        await send({"type": "http.response.body", "body": answer})
        task = asyncio.create_task(commit_later())
        pending.add(task)
        task.add_done_callback(pending.discard)

    return ReferenceTarget(profiles=PROFILES, runtime_wrapper=_on_stream(handle))


def _drop_last_messages(database: Path) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute(
            "DELETE FROM messages WHERE (session_id, seq) IN "
            "(SELECT session_id, MAX(seq) FROM messages GROUP BY session_id)"
        )


def loses_the_last_message_on_restart() -> ReferenceTarget:
    """On every start after the first, the last message of each session is gone from the store
    (a write-behind cache flushed up to the one before last)."""
    data_dir = Path(tempfile.mkdtemp(prefix="sessionlab-broken-durability-"))
    starts = 0

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            nonlocal starts
            if scope["type"] == "lifespan":
                starts += 1
                if starts > 1:
                    await asyncio.to_thread(_drop_last_messages, data_dir / "sessions.db")
            await app(scope, receive, send)

        return wrapped

    return ReferenceTarget(data_dir=data_dir, profiles=PROFILES, runtime_wrapper=wrap)


def stores_a_resend_twice() -> ReferenceTarget:
    """Reads a user message's client_message_id and forgets it: an IDE's resend after its socket
    dropped mid-turn is a new turn, stored again. Its agent takes a moment per word, as real
    ones do, so some connections drop mid-turn."""

    async def handle(
        body: dict[str, Any], _raw: bytes, app: ASGIApp, scope: Scope, send: Send
    ) -> None:
        async def slowly(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                await asyncio.sleep(PACE)
            await send(message)

        forgotten = _without_id(body) if _key(body) is not None else body
        await _pass_on(json.dumps(forgotten).encode(), app, scope, slowly)

    return ReferenceTarget(profiles=PROFILES, runtime_wrapper=_on_stream(handle))


def reorders_under_concurrency() -> ReferenceTarget:
    """Orders a history by the time its turns were written, to the second, then by a hash: what
    a store without a sequence reads back. Turns written within one second come back in any
    order."""
    written: dict[tuple[str, str], int] = {}

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            if scope["type"] == "http" and path == STREAM and scope["method"] == "POST":
                parts: list[bytes] = []
                while True:
                    message = await receive()
                    parts.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
                raw = b"".join(parts)
                try:
                    body = json.loads(raw)
                    content = body["message"]["content"]
                    written[(body["session_id"], "".join(str(content).split()))] = int(time.time())
                except (ValueError, KeyError, TypeError):
                    pass
                sent = False

                async def replay() -> Message:
                    nonlocal sent
                    if not sent:
                        sent = True
                        return {"type": "http.request", "body": raw, "more_body": False}
                    await asyncio.Event().wait()
                    raise AssertionError("unreachable")

                await app(scope, replay, send)
                return
            if scope["type"] == "http" and path.endswith("/history") and scope["method"] == "GET":
                await _reordered_history(app, scope, receive, send, written)
                return
            await app(scope, receive, send)

        return wrapped

    return ReferenceTarget(profiles=PROFILES, runtime_wrapper=wrap)


async def _reordered_history(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, written: dict[tuple[str, str], int]
) -> None:
    start: Message = {}
    parts: list[bytes] = []

    async def keep(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        else:
            parts.append(message.get("body", b""))

    await app(scope, receive, keep)
    raw = b"".join(parts)
    try:
        body = json.loads(raw)
        body["messages"] = _by_second(body["session_id"], body["messages"], written)
        raw = json.dumps(body).encode()
    except (ValueError, KeyError, TypeError):
        pass
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(raw)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def _by_second(
    session_id: str, messages: list[dict[str, Any]], written: dict[tuple[str, str], int]
) -> list[dict[str, Any]]:
    turns: list[list[dict[str, Any]]] = []
    for message in messages:
        if message.get("role") == "user" or not turns:
            turns.append([])
        turns[-1].append(message)

    def key(turn: list[dict[str, Any]]) -> tuple[int, str]:
        text = "".join(str(turn[0].get("content")).split())
        second = written.get((session_id, text), 0)
        return second, hashlib.sha256(text.encode()).hexdigest()

    return [message for turn in sorted(turns, key=key) for message in turn]
