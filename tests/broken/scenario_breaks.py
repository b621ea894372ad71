"""Reference variants for the scenario tests: ones that break what a test plan checks, and one
that is correct but unlike the reference where the contract leaves room (the agent's wording, the
shape of its turns, the layout of a log line)."""

import asyncio
import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Send

from conformance.targets import LogSource, Service
from conformance.targets.reference_target import REFERENCE_PROFILES, ReferenceTarget
from tests.broken.asgi import intercept_socket, rewrite_json

HISTORY = re.compile(r"/sessions/[^/]+/history")


def _history_get(method: str, path: str) -> bool:
    return method == "GET" and bool(HISTORY.fullmatch(path))


def history_always_empty() -> ReferenceTarget:
    """The gateway answers every history with no messages: a switch shows an empty chat."""

    def empty(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "messages": [], "message_count": 0}

    return ReferenceTarget(gateway_wrapper=rewrite_json(_history_get, empty))


# What the agent of an independent implementation says, whatever it is asked: no echo.
REPLY = "Understood."


def _sent_frame(message: Message) -> dict[str, Any] | None:
    if message.get("type") != "websocket.send" or message.get("text") is None:
        return None
    frame = json.loads(message["text"])
    return frame if isinstance(frame, dict) else None


async def _own_words(message: Message, send: Send) -> bool:
    frame = _sent_frame(message)
    if frame is None or frame.get("type") != "assistant_message":
        return False
    if not frame.get("is_final"):
        return True  # the echo's chunks never reach the IDE
    reply = {"type": "assistant_message", "content": REPLY, "is_final": True}
    await send({**message, "text": json.dumps(reply)})
    return True


def _looked_something_up(body: dict[str, Any]) -> dict[str, Any]:
    """Each reply comes after a tool round of the agent's own, and in the agent's words."""
    messages: list[dict[str, Any]] = []
    for message in body["messages"]:
        if message.get("role") == "assistant":
            if messages and messages[-1].get("role") == "user":
                call_id = f"call_{len(messages)}"
                call = {"id": call_id, "type": "function", "function": {"name": "search"}}
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                messages.append(
                    {
                        "role": "tool",
                        "content": "no hits",
                        "tool_call_id": call_id,
                        "name": "search",
                    }
                )
            message = {**message, "content": REPLY}
        messages.append(message)
    return {**body, "messages": messages, "message_count": len(messages)}


def _rewrite_connected(line: str) -> str:
    return re.sub(r"WebSocket connected: (\S+)", r"[\1] WebSocket connected", line)


class _IdFirstLogs:
    """The gateway's lines with the id before the phrase, as another logger lays them out."""

    def __init__(self, source: LogSource) -> None:
        self.source = source

    def lines(self) -> list[str]:
        return [_rewrite_connected(line) for line in self.source.lines()]

    async def wait_for(self, pattern: str, since: int = 0) -> str:
        compiled = re.compile(pattern)
        while True:
            for line in self.lines()[since:]:
                if compiled.search(line):
                    return line
            await asyncio.sleep(0.02)


class _IndependentTarget(ReferenceTarget):
    def logs(self, service: Service) -> LogSource:
        source = super().logs(service)
        return _IdFirstLogs(source) if service == "gateway" else source


def independent_implementation() -> ReferenceTarget:
    """Correct, and unlike the reference wherever the contract allows: an agent that answers in
    its own words after a tool round of its own, a gateway logging `[<id>] WebSocket connected`.
    It claims no `scripted` profile, as a real agent cannot follow script directives."""

    def wrap(app: ASGIApp) -> ASGIApp:
        replies = intercept_socket(outgoing=_own_words)(app)
        return rewrite_json(_history_get, _looked_something_up)(replies)

    target = _IndependentTarget(profiles=REFERENCE_PROFILES - {"scripted"}, gateway_wrapper=wrap)
    target.name = "independent"
    return target


async def _no_final_frame(message: Message, send: Send) -> bool:
    frame = _sent_frame(message)
    return (
        frame is not None
        and frame.get("type") == "assistant_message"
        and bool(frame.get("is_final"))
    )


def turn_never_ends() -> ReferenceTarget:
    """The gateway relays a reply's chunks but never its final one: the turn stays open."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(outgoing=_no_final_frame))


async def _say_nothing(message: Message, send: Send) -> bool:
    frame = _sent_frame(message)
    if frame is None or frame.get("type") != "assistant_message":
        return False
    if frame.get("is_final"):
        await send({**message, "text": json.dumps({**frame, "content": ""})})
    return True


def reply_always_empty() -> ReferenceTarget:
    """Every turn ends with a final assistant message with no text."""
    return ReferenceTarget(gateway_wrapper=intercept_socket(outgoing=_say_nothing))
