"""WebSocket frames of PROTOCOL.md section 5, as one discriminated union per direction."""

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

Role = Literal["user", "assistant", "system", "tool"]


class _Frame(BaseModel):
    # Strict: a frame with `"is_final": "yes"` or `"content": 5` is malformed, not coerced.
    model_config = ConfigDict(strict=True, extra="allow")


# IDE -> gateway


class UserMessageFrame(_Frame):
    type: Literal["user_message"] = "user_message"
    content: str
    role: Role
    # Profile `idempotent` (X-IDEM-1): the IDE's name for this message; a resend under the same
    # name within the session gets the stored reply instead of a second turn.
    client_message_id: str | None = Field(default=None, min_length=1, max_length=128)


class ToolResultFrame(_Frame):
    type: Literal["tool_result"] = "tool_result"
    call_id: str
    tool_name: str | None = None
    result: Any = None
    error: str | None = None


class SwitchAgentFrame(_Frame):
    type: Literal["switch_agent"] = "switch_agent"
    agent_type: str
    content: str
    reason: str | None = None


class HitlDecisionFrame(_Frame):
    type: Literal["hitl_decision"] = "hitl_decision"
    call_id: str
    decision: Literal["approve", "edit", "reject"]
    modified_arguments: dict[str, Any] | None = None
    feedback: str | None = None


ClientFrame = Annotated[
    UserMessageFrame | ToolResultFrame | SwitchAgentFrame | HitlDecisionFrame,
    Field(discriminator="type"),
]
CLIENT_FRAME_TYPES: tuple[type[_Frame], ...] = (
    UserMessageFrame,
    ToolResultFrame,
    SwitchAgentFrame,
    HitlDecisionFrame,
)

# Gateway -> IDE


class AssistantMessageFrame(_Frame):
    type: Literal["assistant_message"] = "assistant_message"
    content: str | None = None
    token: str | None = None
    is_final: bool

    @property
    def text(self) -> str:
        """The chunk's text: the IDE reads `content` and accepts `token` as an alias."""
        return self.content if self.content is not None else (self.token or "")


class ToolCallFrame(_Frame):
    type: Literal["tool_call"] = "tool_call"
    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    requires_approval: bool


class AgentSwitchedFrame(_Frame):
    type: Literal["agent_switched"] = "agent_switched"
    content: str | None = None
    from_agent: str | None = None
    to_agent: str | None = None
    reason: str | None = None
    confidence: str | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _agents_present(self) -> "AgentSwitchedFrame":
        # The IDE reads the agents at the top level or from a nested `metadata` object.
        nested = self.metadata or {}
        for name in ("from_agent", "to_agent"):
            value = getattr(self, name)
            if value is None:
                value = nested.get(name)
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string, at the top level or in metadata")
        return self

    @property
    def switched_from(self) -> str:
        return self.from_agent or str((self.metadata or {})["from_agent"])

    @property
    def switched_to(self) -> str:
        return self.to_agent or str((self.metadata or {})["to_agent"])


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    content: str


ServerFrame = Annotated[
    AssistantMessageFrame | ToolCallFrame | AgentSwitchedFrame | ErrorFrame,
    Field(discriminator="type"),
]
SERVER_FRAME_TYPES: tuple[type[_Frame], ...] = (
    AssistantMessageFrame,
    ToolCallFrame,
    AgentSwitchedFrame,
    ErrorFrame,
)

CLIENT_FRAME_ADAPTER: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
SERVER_FRAME_ADAPTER: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)


class FrameError(ValueError):
    """A frame that is not valid; its message is what goes into the `error` frame."""


def _frame_type_of(data: object, known: set[str]) -> str:
    if not isinstance(data, dict):
        raise FrameError("Invalid message: a frame must be a JSON object")
    frame_type = data.get("type")
    if frame_type is None:
        raise FrameError("Invalid message: missing message type")
    if not isinstance(frame_type, str):
        raise FrameError("Invalid message: type must be a string")
    if frame_type not in known:
        raise FrameError(f"Unknown message type: {frame_type}")
    return frame_type


def _describe(error: ValidationError, frame_type: str) -> str:
    problems = []
    for item in error.errors(include_url=False):
        # The first location element is the union tag; the rest names the field.
        location = ".".join(str(part) for part in item["loc"][1:]) or "frame"
        problems.append(f"{location}: {item['msg']}")
    return f"Invalid {frame_type} frame: " + "; ".join(problems)


_CLIENT_TYPES = {model.model_fields["type"].default for model in CLIENT_FRAME_TYPES}
_SERVER_TYPES = {model.model_fields["type"].default for model in SERVER_FRAME_TYPES}


LONE_SURROGATE = "Invalid JSON: a \\u escape names a lone surrogate, which is not a character"
# Only a \u escape into the surrogate range can leave half a pair; most frames hold none.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _is_unicode(text: str | bytes, data: Any) -> bool:
    """False where a \\u escape left half a surrogate pair, which no UTF-8 text can carry on."""
    if isinstance(text, str) and _SURROGATE_ESCAPE.search(text) is None:
        return True
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _parse(text: str | bytes, adapter: TypeAdapter[Any], known: set[str]) -> Any:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"Invalid JSON: {exc}") from None
    if not _is_unicode(text, data):
        raise FrameError(LONE_SURROGATE)
    frame_type = _frame_type_of(data, known)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise FrameError(_describe(exc, frame_type)) from None


def parse_client_frame(text: str | bytes) -> ClientFrame:
    """Parse one IDE -> gateway frame, or raise FrameError with the text of the error frame."""
    frame: ClientFrame = _parse(text, CLIENT_FRAME_ADAPTER, _CLIENT_TYPES)
    return frame


def parse_server_frame(text: str | bytes) -> ServerFrame:
    """Parse one gateway -> IDE frame (also the data of an SSE `message` event)."""
    frame: ServerFrame = _parse(text, SERVER_FRAME_ADAPTER, _SERVER_TYPES)
    return frame


def validate_server_frame(data: object) -> ServerFrame:
    """Validate an already-decoded gateway -> IDE frame."""
    frame_type = _frame_type_of(data, _SERVER_TYPES)
    try:
        return SERVER_FRAME_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise FrameError(_describe(exc, frame_type)) from None


def frame_json(frame: BaseModel) -> str:
    """Serialise a frame the way it goes on the wire: fields left unset are left out."""
    return frame.model_dump_json(exclude_none=True)
