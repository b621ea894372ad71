"""Reference variants whose break hides from the example-based checks: only the generated examples
of the property checks, or the steps of the session model, find it.

Each is a zero-argument factory for `sessionlab verify --target-factory MODULE:NAME`.
"""

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.targets.reference_target import ReferenceTarget
from tests.broken.asgi import Wrapper, answer, intercept_socket, rewrite_json

LONGEST_KEPT = 1000


def _history(method: str, path: str) -> bool:
    return method == "GET" and path.startswith("/sessions/") and path.endswith("/history")


def _plain(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return not isinstance(content, str) or (content.isascii() and len(content) <= LONGEST_KEPT)


def history_drops_unusual_messages() -> ReferenceTarget:
    """R-HIST-3: the history leaves out every message with a non-ASCII character or over 1,000
    characters (an encoding bug on the read path); ASCII chat looks perfect."""

    def drop(body: dict[str, Any]) -> dict[str, Any]:
        kept = [m for m in body["messages"] if _plain(m)]
        return {**body, "messages": kept, "message_count": len(kept)}

    return ReferenceTarget(runtime_wrapper=rewrite_json(_history, drop))


BUSY_AFTER_MESSAGES = 6  # three turns of the script agent: a user message and a reply each


def list_hides_busy_sessions() -> ReferenceTarget:
    """R-LIST-1: a session drops out of GET /sessions after its third turn (the list query pages
    on a message counter by mistake); the total counts what is listed, so it looks consistent."""

    def hide(body: dict[str, Any]) -> dict[str, Any]:
        shown = [s for s in body["sessions"] if s["message_count"] < BUSY_AFTER_MESSAGES]
        return {**body, "sessions": shown, "total": len(shown)}

    return ReferenceTarget(
        runtime_wrapper=rewrite_json(
            lambda method, path: (method, path) == ("GET", "/sessions"), hide
        )
    )


async def _crash_on_structured_content(message: Message, send: Send) -> bool:
    text = message.get("text")
    if message["type"] != "websocket.receive" or text is None:
        return False
    try:
        frame = json.loads(text)
    except ValueError:
        return False
    if isinstance(frame, dict) and isinstance(frame.get("content"), list | dict):
        # What a handler that calls content.strip() without checking the type ends in.
        await send({"type": "websocket.close", "code": 1011, "reason": "internal error"})
        return True
    return False


def gateway_crashes_on_structured_content() -> ReferenceTarget:
    """W-BAD-2: a frame whose `content` is a JSON array or object crashes the gateway's socket
    (close 1011); a number there, as the example check sends, gets its error frame."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(incoming=_crash_on_structured_content))


def _refuse_non_objects_with_500() -> Wrapper:
    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or (scope["method"], scope["path"]) != ("POST", "/sessions"):
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
            try:
                parsed = json.loads(body) if body.strip() else {}
            except (ValueError, UnicodeDecodeError):
                parsed = {}
            if not isinstance(parsed, dict):
                # The body is used as a dict unchecked: an AttributeError, a 500.
                payload = json.dumps({"error": "internal server error"}).encode()
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": payload})
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, replay, send)

        return wrapped

    return wrap


def create_500_on_json_that_is_not_an_object() -> ReferenceTarget:
    """R-CREATE-1: POST /sessions with a JSON body that is not an object (`null`, `[]`, `1`)
    answers 500; no body and `{}`, what the example check sends, work."""
    return ReferenceTarget(runtime_wrapper=_refuse_non_objects_with_500())


def _control_character(method: str, path: str) -> bool:
    return method == "GET" and any(0 < ord(c) < 32 or ord(c) == 127 for c in path)


def history_500_on_control_characters() -> ReferenceTarget:
    """R-HIST-2: an id with a control character (a tab, a newline, not NUL) answers 500, as a
    logger that refuses them would; the example check's odd ids, NUL included, get their 404."""
    return ReferenceTarget(
        runtime_wrapper=answer(_control_character, 500, {"error": "invalid log record"})
    )
