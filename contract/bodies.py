"""HTTP bodies of PROTOCOL.md sections 3 and 4 (runtime and gateway REST)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from contract.frames import ClientFrame, Role


class _Body(BaseModel):
    # Lax on purpose for bodies: extra fields are allowed so targets may add their own.
    model_config = ConfigDict(extra="allow")


class Health(_Body):
    status: Literal["healthy"]
    service: str
    version: str


class CreatedSession(_Body):
    session_id: str
    message_count: Literal[0]
    current_agent: Literal["orchestrator"]
    created_at: str


class SessionInfo(_Body):
    session_id: str
    message_count: int
    last_activity: str
    current_agent: str | None
    # Profile `lifecycle` (X-REN-1): the title a session was given, if any.
    title: str | None = None


class SessionList(_Body):
    sessions: list[SessionInfo]
    total: int


class Message(_Body):
    role: Role
    content: str | None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: Any) -> dict[str, Any]:
        # `content` may be null; the optional fields are absent rather than null.
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None or key == "content"}


class AgentSwitchRecord(_Body):
    from_agent: str
    to_agent: str
    reason: str | None = None
    switched_at: str


class History(_Body):
    session_id: str
    messages: list[Message]
    message_count: int
    last_activity: str | None
    current_agent: str | None
    agent_history: list[dict[str, Any]]


class AgentInfo(_Body):
    type: str
    name: str
    description: str
    allowed_tools: list[str]
    has_file_restrictions: bool


class CurrentAgent(_Body):
    session_id: str
    current_agent: str
    agent_history: list[dict[str, Any]]
    switch_count: int


class StreamRequest(_Body):
    session_id: str = Field(min_length=1)
    message: ClientFrame


class StreamDone(_Body):
    status: Literal["completed"] = "completed"


class StreamError(_Body):
    type: Literal["error"] = "error"
    error: str
    is_final: Literal[True] = True


class RenameRequest(_Body):
    """Profile `lifecycle` (X-REN-1)."""

    title: str = Field(min_length=1, max_length=200)


class SessionExport(_Body):
    """Profile `export` (X-EXP-1): `GET /sessions/{id}/export?format=json`."""

    session_id: str
    title: str | None
    exported_at: str
    message_count: int
    messages: list[Message]
    agent_history: list[dict[str, Any]]


class SearchResult(_Body):
    session_id: str
    title: str | None
    last_activity: str
    snippet: str


class SearchResults(_Body):
    """Profile `search` (X-SRCH-1): `GET /sessions/search?q=...`."""

    results: list[SearchResult]
    total: int


class ErrorBody(_Body):
    error: str
    detail: Any = None
