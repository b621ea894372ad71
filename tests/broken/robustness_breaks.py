"""Reference variants that each break one requirement of hostile input and load (R-ROB-, G-ROB-,
W-ROB-): each behaves as the reference did before it was hardened, in one respect.

Each is a zero-argument factory for `sessionlab verify --target-factory MODULE:NAME`.
"""

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.targets.reference_target import ReferenceTarget
from reference.json_limits import nests_too_deep
from reference.server import ServerLimits, attach_limits, limits_of
from reference.settings import DEFAULT_MAX_BYTES
from tests.broken.asgi import Wrapper, intercept_socket

# Deeper than this, Python's parser gives up with a RecursionError.
PARSER_DEPTH = 1000
MIB = 1024 * 1024


def _keeping_limits(wrapper: Wrapper) -> Wrapper:
    """The wrapper, with the wrapped app's server limits still visible to its server."""

    def wrap(app: ASGIApp) -> ASGIApp:
        wrapped = wrapper(app)
        attach_limits(wrapped, limits_of(app))
        return wrapped

    return wrap


def _recursion_error_on_deep_posts(path: str | None) -> Wrapper:
    """POSTs (to `path`, or any) whose body nests deeper than the parser follows answer the 500
    of a RecursionError, as the services did before they refused such bodies."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] != "POST":
                await app(scope, receive, send)
                return
            if path is not None and scope["path"] != path:
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            body = b"".join(chunks)
            if nests_too_deep(body, PARSER_DEPTH):
                payload = json.dumps({"error": "internal error"}).encode()
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": payload})
                return
            replayed = [{"type": "http.request", "body": body, "more_body": False}]

            async def replay() -> Message:
                return replayed.pop() if replayed else await receive()

            await app(scope, replay, send)

        return wrapped

    return _keeping_limits(wrap)


def runtime_500_on_deep_bodies() -> ReferenceTarget:
    """R-ROB-1: a body nested 100,000 levels deep makes the runtime answer 500."""
    return ReferenceTarget(runtime_wrapper=_recursion_error_on_deep_posts(None))


def gateway_500_on_deep_bodies() -> ReferenceTarget:
    """G-ROB-1: the gateway's POST /sessions answers 500 to a body nested 100,000 levels deep."""
    return ReferenceTarget(gateway_wrapper=_recursion_error_on_deep_posts("/sessions"))


async def _parse_frames(message: Message, _send: Send) -> bool:
    text = message.get("text")
    if message["type"] == "websocket.receive" and text is not None:
        # As a gateway that parses each frame before anything else: a RecursionError kills the
        # socket's handler (close 1006 for the client, no error frame).
        try:
            json.loads(text)
        except ValueError:
            return False
    return False


def gateway_dies_on_deep_frames() -> ReferenceTarget:
    """W-ROB-1: a frame nested 100,000 levels deep kills the socket's handler."""
    return ReferenceTarget(
        gateway_wrapper=_keeping_limits(intercept_socket(incoming=_parse_frames))
    )


async def _stall_on_big_frames(message: Message, _send: Send) -> bool:
    if message["type"] == "websocket.receive":
        size = len(message.get("text") or "") + len(message.get("bytes") or b"")
        if size >= MIB:
            # A blocking decode of the whole frame, on the loop every client shares.
            time.sleep(6)  # noqa: ASYNC251 - the break is the blocking call
    return False


def gateway_stalls_on_big_frames() -> ReferenceTarget:
    """W-ROB-2: frames up to 32 MiB accepted, and each big one holds up the whole gateway."""
    return ReferenceTarget(
        gateway_overrides={"max_bytes": 32 * MIB},
        gateway_wrapper=_keeping_limits(intercept_socket(incoming=_stall_on_big_frames)),
    )


def _unguarded(max_connections: int) -> Wrapper:
    limits = ServerLimits(
        max_bytes=DEFAULT_MAX_BYTES, max_connections=max_connections, guard_heads=False
    )

    def wrap(app: ASGIApp) -> ASGIApp:
        attach_limits(app, limits)
        return app

    return wrap


def gateway_starved_by_slow_heads() -> ReferenceTarget:
    """G-ROB-2: uvicorn's HTTP as it comes, bounded at 40 requests at once: half-sent heads use
    up the bound and every other client gets 503 (no deadline, nobody evicted)."""
    return ReferenceTarget(gateway_wrapper=_unguarded(max_connections=40))


def gateway_without_head_deadline() -> ReferenceTarget:
    """G-ROB-3 (a SHOULD): a half-sent request head holds its connection for an hour."""
    return ReferenceTarget(gateway_overrides={"head_timeout": 3600.0})


def gateway_accepts_16_mib_frames() -> ReferenceTarget:
    """W-ROB-3 (a SHOULD): frames and bodies up to 64 MiB, over the contract's 16 MiB ceiling."""
    return ReferenceTarget(gateway_overrides={"max_bytes": 64 * MIB})
