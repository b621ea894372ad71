"""How each client model reads the gateway's frames: the contract's strict parser, or the real
IDE's lenient one. Both give the chat the same few events."""

import json
from dataclasses import dataclass
from typing import Any, Protocol

from contract.frames import (
    AgentSwitchedFrame,
    AssistantMessageFrame,
    ErrorFrame,
    FrameError,
    ToolCallFrame,
    parse_server_frame,
)


@dataclass(frozen=True)
class Chunk:
    text: str
    is_final: bool


@dataclass(frozen=True)
class Switched:
    # None: the frame named no agent, and the chat keeps the one it has.
    to_agent: str | None


@dataclass(frozen=True)
class Failed:
    """An `error` frame."""

    text: str


@dataclass(frozen=True)
class Malformed:
    """A frame the client refuses: the turn ends in an error."""

    reason: str


@dataclass(frozen=True)
class Dropped:
    """A frame the client ignores: nothing but a trace line."""

    reason: str


Incoming = Chunk | ToolCallFrame | Switched | Failed | Malformed | Dropped


class FrameReader(Protocol):
    def read(self, text: str) -> Incoming: ...


class ContractReader:
    """The design note's client: section 5 as written, anything else is an error."""

    def read(self, text: str) -> Incoming:
        try:
            frame = parse_server_frame(text)
        except FrameError as exc:
            return Malformed(f"invalid frame from the gateway: {exc}")
        match frame:
            case AssistantMessageFrame():
                return Chunk(frame.text, frame.is_final)
            case ToolCallFrame():
                return frame
            case AgentSwitchedFrame():
                return Switched(frame.switched_to)
            case ErrorFrame():
                return Failed(frame.content)


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{key} is not a {kind.__name__}")
    return value


def _nested(data: dict[str, Any], key: str) -> Any:
    """A field at the top level, else under `metadata`."""
    value = data.get(key)
    metadata = data.get("metadata")
    if value is None and isinstance(metadata, dict):
        value = metadata.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


class LenientReader:
    """The real IDE's reader: defaults for missing flags, `token` unknown to it, and any frame
    it cannot read dropped without a word."""

    def read(self, text: str) -> Incoming:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                return Dropped("not a JSON object")
            return self._event(data)
        except (ValueError, TypeError) as exc:
            return Dropped(f"{type(exc).__name__}: {exc}")

    def _event(self, data: dict[str, Any]) -> Incoming:
        kind = data.get("type")
        if kind == "assistant_message":
            is_final = _optional(data, "is_final", bool)
            return Chunk(_optional(data, "content", str) or "", bool(is_final))
        if kind == "tool_call":
            call_id, name = data.get("call_id"), data.get("tool_name")
            arguments = data.get("arguments")
            if not (isinstance(call_id, str) and isinstance(name, str)):
                return Dropped("tool_call without call_id or tool_name")
            if not isinstance(arguments, dict):
                return Dropped("tool_call without arguments")
            approval = bool(_optional(data, "requires_approval", bool))
            return ToolCallFrame(
                call_id=call_id, tool_name=name, arguments=arguments, requires_approval=approval
            )
        if kind == "agent_switched":
            for name in ("from_agent", "reason", "confidence"):
                _nested(data, name)
            _optional(data, "content", str)
            return Switched(_nested(data, "to_agent"))
        if kind == "error":
            content = _optional(data, "content", str)
            if content is None:
                content = _optional(data, "error", str)
            return Failed(content or "")
        return Dropped(f"frame type {kind!r} is not one it reads")
