"""Reference variants that each break one requirement of the core, strict and scripted profiles.

Each is a zero-argument factory for `sessionlab verify --target-factory MODULE:NAME`.
"""

import itertools
import json
import re
from typing import Any

from starlette.types import Message, Send

from conformance.targets.reference_target import ReferenceTarget
from tests.broken.asgi import (
    answer,
    header_of,
    intercept_socket,
    log_header,
    rewrite_http,
    rewrite_json,
    when,
)

CLIENT_KEY = "broken-client-key"


def _is(method: str, pattern: str) -> Any:
    compiled = re.compile(pattern)
    return lambda m, path: m == method and compiled.fullmatch(path) is not None


# R-AUTH


def runtime_agents_without_key() -> ReferenceTarget:
    """R-AUTH-1: GET /agents answers without any key."""
    no_key = lambda scope: header_of(scope, b"x-internal-auth") is None  # noqa: E731
    return ReferenceTarget(
        runtime_wrapper=when(no_key, answer(_is("GET", "/agents"), 200, [])),
    )


def runtime_logs_the_key() -> ReferenceTarget:
    """R-AUTH-3: the runtime logs the key at debug level, as the described system does."""
    return ReferenceTarget(runtime_wrapper=log_header(b"x-internal-auth", "sessionlab.runtime"))


# R-CREATE


def create_without_created_at() -> ReferenceTarget:
    """R-CREATE-1: the created session lacks `created_at`."""

    def drop(body: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in body.items() if key != "created_at"}

    return ReferenceTarget(runtime_wrapper=rewrite_json(_is("POST", "/sessions"), drop))


def create_with_local_ids() -> ReferenceTarget:
    """R-CREATE-2 (a SHOULD): ids in the IDE's local format."""
    counter = itertools.count(1_700_000_000_000)

    def local(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "session_id": f"session_{next(counter)}"}

    return ReferenceTarget(runtime_wrapper=rewrite_json(_is("POST", "/sessions"), local))


def create_repeats_ids() -> ReferenceTarget:
    """R-CREATE-3: every 250th create answers the id of an earlier one."""
    counter = itertools.count()
    first: list[str] = []

    def repeat(body: dict[str, Any]) -> dict[str, Any]:
        first.append(body["session_id"])
        return {**body, "session_id": first[0]} if next(counter) % 250 == 249 else body

    return ReferenceTarget(runtime_wrapper=rewrite_json(_is("POST", "/sessions"), repeat))


# R-LIST, R-HIST


def list_total_off_by_one() -> ReferenceTarget:
    """R-LIST-1: `total` one more than the sessions listed."""

    def plus_one(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "total": body["total"] + 1}

    return ReferenceTarget(runtime_wrapper=rewrite_json(_is("GET", "/sessions"), plus_one))


def history_reversed() -> ReferenceTarget:
    """R-HIST-3: the history comes back newest first."""

    def reverse(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "messages": list(reversed(body["messages"]))}

    return ReferenceTarget(
        runtime_wrapper=rewrite_json(_is("GET", r"/sessions/[^/]+/history"), reverse)
    )


def history_500_on_quotes() -> ReferenceTarget:
    """R-HIST-2: an id with a quote makes the runtime fail with a 500."""
    quoted = lambda m, path: "'" in path or "%27" in path  # noqa: E731
    return ReferenceTarget(runtime_wrapper=answer(quoted, 500, {"error": "syntax error"}))


# R-STREAM


def stream_without_done() -> ReferenceTarget:
    """R-STREAM-1: the stream ends without its `done` event."""

    def cut(status: int, body: bytes) -> tuple[int, bytes]:
        return status, re.sub(rb"event: done\ndata: [^\n]*\n\n", b"", body)

    return ReferenceTarget(runtime_wrapper=rewrite_http(_is("POST", "/agent/message/stream"), cut))


def tolerant_runtime() -> ReferenceTarget:
    """R-STREAM-3 (strict): a message for an unknown session creates it."""
    return ReferenceTarget(runtime_overrides={"strict": False})


# G-PROXY, G-AUTH, G-DOWN


def gateway_rewrites_agents() -> ReferenceTarget:
    """G-PROXY-1: the gateway drops a field of the runtime's answer."""

    def drop(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in agent.items() if k != "description"} for agent in body]

    return ReferenceTarget(gateway_wrapper=rewrite_json(_is("GET", "/agents"), drop))


def gateway_lists_without_client_key() -> ReferenceTarget:
    """G-AUTH-1: GET /sessions works without the client key."""

    def with_key(scope: dict[str, Any]) -> bool:
        return (
            scope["type"] == "http"
            and scope["path"] == "/sessions"
            and (header_of(scope, b"x-internal-auth") != CLIENT_KEY.encode())
        )

    def listing(app: Any) -> Any:
        async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if with_key(scope) and scope["method"] == "GET":
                headers = [h for h in scope["headers"] if h[0] != b"x-internal-auth"]
                scope = {**scope, "headers": [*headers, (b"x-internal-auth", CLIENT_KEY.encode())]}
            await app(scope, receive, send)

        return wrapped

    return ReferenceTarget(client_key=CLIENT_KEY, gateway_wrapper=listing)


def gateway_html_when_runtime_down() -> ReferenceTarget:
    """G-DOWN-1: with the runtime down, an HTML error page instead of a JSON error."""

    def html(status: int, body: bytes) -> tuple[int, bytes]:
        return (
            (status, b"<html><h1>Service Unavailable</h1></html>")
            if status == 503
            else (
                status,
                body,
            )
        )

    anything = lambda m, path: path != "/health"  # noqa: E731
    return ReferenceTarget(gateway_wrapper=rewrite_http(anything, html))


# W-CONN, W-TURN, W-BAD, W-DOWN, W-ISO


async def _refuse(message: Message, send: Send) -> bool:
    if message["type"] == "websocket.accept":
        # Accepted, then closed at once: what a gateway that thinks every id unknown does.
        await send(message)
        await send({"type": "websocket.close", "code": 4404, "reason": "unknown session"})
        return True
    return message["type"] != "websocket.close"


def gateway_refuses_every_socket() -> ReferenceTarget:
    """W-CONN-1: every socket is refused as if its session were unknown."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(outgoing=_refuse))


def tolerant_gateway() -> ReferenceTarget:
    """W-CONN-2 (strict): a socket for an unknown id is accepted."""
    return ReferenceTarget(gateway_overrides={"strict": False})


async def _never_final(message: Message, send: Send) -> bool:
    text = message.get("text")
    if message["type"] == "websocket.send" and text and '"is_final":true' in text.replace(" ", ""):
        frame = json.loads(text)
        frame["is_final"] = False
        await send({"type": "websocket.send", "text": json.dumps(frame)})
        return True
    return False


def turns_never_end() -> ReferenceTarget:
    """W-TURN-1: no chunk is ever final."""
    return ReferenceTarget(turn_timeout=3, gateway_wrapper=intercept_socket(outgoing=_never_final))


async def _close_on_text(message: Message, send: Send) -> bool:
    text = message.get("text")
    if message["type"] == "websocket.receive" and text is not None:
        try:
            json.loads(text)
        except RecursionError:
            return False  # JSON, only deeper than this break reads: the gateway's own handling
        except ValueError:
            await send({"type": "websocket.close", "code": 1011, "reason": "bad frame"})
            return True
    return False


def closes_on_bad_json() -> ReferenceTarget:
    """W-BAD-1: text that is not JSON closes the socket."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(incoming=_close_on_text))


async def _crash_on_lone_surrogate(message: Message, _send: Send) -> bool:
    text = message.get("text")
    if message["type"] == "websocket.receive" and text is not None:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            # Not JSON, or deeper than this break reads: the gateway's own handling.
            return False
        # As a gateway that forwards the decoded frame as UTF-8 does: the handler dies.
        json.dumps(data, ensure_ascii=False).encode()
    return False


def crashes_on_lone_surrogate() -> ReferenceTarget:
    """W-BAD-1: a frame holding a lone surrogate escape kills the socket's handler."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(incoming=_crash_on_lone_surrogate))


async def _close_on_outage(message: Message, send: Send) -> bool:
    text = message.get("text") or ""
    if message["type"] == "websocket.send" and "runtime unavailable" in text:
        await send({"type": "websocket.close", "code": 1011, "reason": "runtime down"})
        return True
    return False


def closes_when_runtime_down() -> ReferenceTarget:
    """W-DOWN-1: the socket is closed when the runtime is unreachable."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(outgoing=_close_on_outage))


def leaks_across_sessions() -> ReferenceTarget:
    """W-ISO-1: every frame is also sent on every other open socket."""
    open_sockets: dict[int, Send] = {}

    def wrap(app: Any) -> Any:
        async def wrapped(scope: dict[str, Any], receive: Any, send: Send) -> None:
            if scope["type"] != "websocket":
                await app(scope, receive, send)
                return
            key = id(scope)
            open_sockets[key] = send

            async def send_everywhere(message: Message) -> None:
                await send(message)
                if message["type"] == "websocket.send":
                    for other, other_send in list(open_sockets.items()):
                        if other != key:
                            await other_send(message)

            try:
                await app(scope, receive, send_everywhere)
            finally:
                open_sockets.pop(key, None)

        return wrapped

    return ReferenceTarget(gateway_wrapper=wrap)


# W-HITL (scripted)


def _client_frame(message: Message, kind: str) -> dict[str, Any] | None:
    text = message.get("text")
    if message["type"] != "websocket.receive" or not text or f'"{kind}"' not in text:
        return None
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return None  # not a frame: the gateway's to answer
    return frame if isinstance(frame, dict) and frame.get("type") == kind else None


def approval_repeats_call() -> ReferenceTarget:
    """W-HITL-1: after approve or edit the tool_call comes again for the same call_id."""
    asked: set[str] = set()

    async def note_call(message: Message, send: Send) -> bool:
        text = message.get("text")
        if message["type"] == "websocket.send" and text and '"tool_call"' in text:
            frame = json.loads(text)  # the gateway's own frames: always JSON objects
            if frame.get("type") == "tool_call" and frame.get("requires_approval") is True:
                asked.add(frame["call_id"])
        return False

    async def repeat(message: Message, send: Send) -> bool:
        decision = _client_frame(message, "hitl_decision")
        call_id = None if decision is None else decision.get("call_id")
        if not isinstance(call_id, str) or call_id not in asked:
            return False
        if decision.get("decision") in ("approve", "edit"):
            # The exchange the contract no longer allows: the approved call comes back to run.
            again = {
                "type": "tool_call",
                "call_id": decision["call_id"],
                "tool_name": "write_file",
                "arguments": decision.get("modified_arguments") or {},
                "requires_approval": False,
            }
            await send({"type": "websocket.send", "text": json.dumps(again)})
        return False

    return ReferenceTarget(gateway_wrapper=intercept_socket(outgoing=note_call, incoming=repeat))


def approval_result_refused() -> ReferenceTarget:
    """W-HITL-1: the IDE's tool_result after its decision gets an error frame."""
    decided: set[str] = set()

    async def refuse(message: Message, send: Send) -> bool:
        decision = _client_frame(message, "hitl_decision")
        if decision is not None:
            if isinstance(decision.get("call_id"), str):
                decided.add(decision["call_id"])
            return False
        result = _client_frame(message, "tool_result")
        call_id = None if result is None else result.get("call_id")
        if not isinstance(call_id, str) or call_id not in decided:
            return False
        error = {"type": "error", "content": f"No tool call awaits {call_id}"}
        await send({"type": "websocket.send", "text": json.dumps(error)})
        return True

    return ReferenceTarget(gateway_wrapper=intercept_socket(incoming=refuse))
