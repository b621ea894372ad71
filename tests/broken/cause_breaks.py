"""Reference variants whose one defect used to fail many requirements, or none visibly.

Each proves that the verdicts point at the cause: the defect's own requirement fails, the checks
that stand on it are `blocked` by it, and nothing else moves.
"""

import contextlib
import itertools
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.targets.reference_target import ReferenceTarget
from tests.broken.asgi import Wrapper, intercept_socket, rewrite_http, rewrite_json
from tests.broken.core_breaks import _is, _never_final


def create_answers_id() -> ReferenceTarget:
    """R-CREATE-1: the new session's id comes back as `id`, not `session_id`."""

    def rename(body: dict[str, Any]) -> dict[str, Any]:
        return {("id" if key == "session_id" else key): value for key, value in body.items()}

    return ReferenceTarget(runtime_wrapper=rewrite_json(_is("POST", "/sessions"), rename))


TURN_TIMEOUT = 20.0


def turns_never_end_slowly() -> ReferenceTarget:
    """W-TURN-1, with a long turn timeout: a run that waited it out per check would take minutes."""
    return ReferenceTarget(
        turn_timeout=TURN_TIMEOUT, gateway_wrapper=intercept_socket(outgoing=_never_final)
    )


def list_names_ids_id() -> ReferenceTarget:
    """R-LIST-1: the listed sessions carry `id` instead of `session_id`."""

    def rename(body: dict[str, Any]) -> dict[str, Any]:
        sessions = [
            {("id" if key == "session_id" else key): value for key, value in info.items()}
            for info in body["sessions"]
        ]
        return {**body, "sessions": sessions}

    return ReferenceTarget(runtime_wrapper=rewrite_json(_is("GET", "/sessions"), rename))


LIMIT_PER_SECOND = 60


def rate_limited(limit: int = LIMIT_PER_SECOND) -> Wrapper:
    """A fixed window of `limit` requests a second; over it, 429 with Retry-After. The agent
    stream is exempt, as chat often is behind such limits."""
    window = {"second": 0, "count": 0}
    body = json.dumps({"detail": "rate limit exceeded"}).encode()

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            exempt = scope["type"] != "http" or scope["path"] in (
                "/health",
                "/agent/message/stream",
            )
            if not exempt:
                second = int(time.monotonic())
                if window["second"] != second:
                    window.update(second=second, count=0)
                window["count"] += 1
                if window["count"] > limit:
                    headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
                    await send({"type": "http.response.start", "status": 429, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
            await app(scope, receive, send)

        return wrapped

    return wrap


def runtime_rate_limits() -> ReferenceTarget:
    """No defect: a runtime that allows so many requests a second and answers 429 beyond."""
    return ReferenceTarget(runtime_wrapper=rate_limited())


def tool_directive_ignored() -> ReferenceTarget:
    """W-TOOL-1 (scripted): the `/tool` directive is treated as plain text."""
    counter = itertools.count()

    def plain(body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        message = body.get("message")
        if isinstance(message, dict) and str(message.get("content", "")).startswith("/tool"):
            message = {**message, "content": f"no tools here {next(counter)}"}
        return {**body, "message": message}

    return ReferenceTarget(runtime_wrapper=rewrite_request_json("/agent/message/stream", plain))


async def _read_body(receive: Receive) -> bytes:
    """A request's whole body, read before the service sees it."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the service `body` once, then whatever comes after."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def rewrite_request_json(path: str, change: Any) -> Wrapper:
    """Rewrite the JSON body of requests to one path before the service reads it."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"] != path:
                await app(scope, receive, send)
                return
            body = await _read_body(receive)
            # A body that is not JSON goes on as it came.
            with contextlib.suppress(ValueError):
                body = json.dumps(change(json.loads(body))).encode()
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))

            await app({**scope, "headers": headers}, _replaying(body, receive), send)

        return wrapped

    return wrap


def current_agent_404_for_new_sessions() -> ReferenceTarget:
    """R-AGENTS-2, as the described system behaves: 404 until a session's first message. The
    gateway passes that 404 on faithfully: G-PROXY-1 and G-PROXY-2 must not fail for it."""

    def missing(status: int, body: bytes) -> tuple[int, bytes]:
        if status == 200 and b'"switch_count":0' in body.replace(b" ", b""):
            return 404, json.dumps({"detail": "no agent yet"}).encode()
        return status, body

    return ReferenceTarget(
        runtime_wrapper=rewrite_http(_is("GET", "/agents/[^/]+/current"), missing)
    )


def odd_stream_bodies_streamed() -> ReferenceTarget:
    """No defect: a body outside the contract (`type: null`, no message) gets a 200 and a
    well-formed stream ending in done; the contract defines answers to valid bodies only."""

    def done_for_invalid(scope: Scope, body: bytes) -> bytes | None:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None
        message = data.get("message") if isinstance(data, dict) else None
        valid = isinstance(message, dict) and isinstance(message.get("type"), str)
        return None if valid else b'event: done\ndata: {"status": "completed"}\n\n'

    return ReferenceTarget(runtime_wrapper=answer_stream("/agent/message/stream", done_for_invalid))


def answer_stream(path: str, decide: Any) -> Wrapper:
    """Answer a request to `path` with the event stream `decide` returns, or pass it on."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"] != path:
                await app(scope, receive, send)
                return
            body = await _read_body(receive)
            stream = decide(scope, body)
            if stream is None:
                await app(scope, _replaying(body, receive), send)
                return
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": stream})

        return wrapped

    return wrap


async def _ignore_binary(message: Any, _send: Send) -> bool:
    return message["type"] == "websocket.receive" and message.get("bytes") is not None


def binary_frames_ignored() -> ReferenceTarget:
    """W-BAD-3 (a SHOULD): a binary frame is swallowed; the socket goes silent about it."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(incoming=_ignore_binary))


async def _chunks_without_spaces(message: Any, send: Send) -> bool:
    text = message.get("text")
    if message["type"] != "websocket.send" or not text or "assistant_message" not in text:
        return False
    frame = json.loads(text)
    if isinstance(frame.get("content"), str):
        frame["content"] = frame["content"].strip()
    await send({"type": "websocket.send", "text": json.dumps(frame)})
    return True


def chunks_without_spaces() -> ReferenceTarget:
    """No defect: chunks "hello", "world" stream what is stored as "hello world"."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(outgoing=_chunks_without_spaces))


def history_500_after_a_nul() -> ReferenceTarget:
    """R-HIST-1: a session that holds a NUL character no longer reads (500), as a store that
    cannot encode one answers; the checks that send unusual content must see it."""

    def fail(status: int, body: bytes) -> tuple[int, bytes]:
        if status == 200 and b"\\u0000" in body:
            return 500, json.dumps({"error": "cannot encode the history"}).encode()
        return status, body

    return ReferenceTarget(
        runtime_wrapper=rewrite_http(_is("GET", r"/sessions/[^/]+/history"), fail)
    )


def gateway_5xx_carries_the_key() -> ReferenceTarget:
    """G-PROXY-2: with the runtime down, the gateway's 502 body shows the internal key."""
    target = ReferenceTarget()

    def leak(status: int, body: bytes) -> tuple[int, bytes]:
        if status >= 500:
            # The key is made when the target is; read it when the answer is made.
            key = target._internal_key
            return status, json.dumps({"error": f"runtime refused key {key}"}).encode()
        return status, body

    target._gateway_wrapper = rewrite_http(lambda method, path: True, leak)
    return target


async def _error_without_content(message: Any, send: Send) -> bool:
    text = message.get("text")
    if message["type"] != "websocket.send" or not text or '"error"' not in text:
        return False
    frame = json.loads(text)
    if frame.get("type") != "error":
        return False
    frame["message"] = frame.pop("content", "")
    await send({"type": "websocket.send", "text": json.dumps(frame)})
    return True


def error_frames_without_content() -> ReferenceTarget:
    """W-BAD-2: error frames carry `message` where the contract has `content`."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(outgoing=_error_without_content))
