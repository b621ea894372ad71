"""The scenario format: a test plan as data. One step = one action, its arguments, and options.

- send: "hello"                 # shorthand: the action's main argument
- expect_reply: {contains: hello}
  within: 5                     # options: a timing bound, a variable to save, a note
- new_session: {}
  as: first                     # later steps say ${first}
"""

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from conformance.contract.requirements import PROFILES

Service = Literal["runtime", "gateway"]
Hop = Literal["ide", "runtime"]
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoArgs(_Args):
    pass


class SessionArg(_Args):
    session: str


class TextArg(_Args):
    text: str


class ServiceArg(_Args):
    service: Service


class SecondsArg(_Args):
    seconds: float = Field(gt=0, le=600)


class ReplyExpect(_Args):
    """With no argument: a final reply with non-empty text, whatever the agent says. The text
    checks suit only an agent whose wording is known (profile `scripted`)."""

    equals: str | None = None
    contains: str | None = None
    matches: str | None = None


class SwitchAgentArgs(_Args):
    agent: str
    content: str = ""


class EditArgs(_Args):
    arguments: dict[str, Any]


class RejectArgs(_Args):
    feedback: str = ""


class ToolCallExpect(_Args):
    tool: str | None = None
    requires_approval: bool | None = None


class WorkspaceFile(_Args):
    path: str
    content: str


class NetworkArgs(_Args):
    hop: Hop
    fault: Literal["down", "up", "cut", "reset", "latency", "timeout", "clear"]
    ms: float | None = Field(default=None, ge=0)
    jitter_ms: float = Field(default=0, ge=0)


class StateExpect(_Args):
    state: Literal["loading", "loaded", "newSessionCreated", "sessionSwitched", "error"]


class SessionExpect(_Args):
    matches: str | None = None
    equals: str | None = None


class MessageExpect(_Args):
    role: Literal["user", "assistant", "system", "tool"]
    content: str | None = None
    contains: str | None = None


class HistoryExpect(_Args):
    """`messages` are looked for in order; other messages may come between them, since an agent
    may add tool calls and their results to a turn. `count` pins the total."""

    session: str | None = None
    count: int | None = Field(default=None, ge=0)
    messages: list[MessageExpect] | None = None
    contains: str | None = None


class LogExpect(_Args):
    """`contains`: one line holding every one of these texts, in any order and place (the contract
    says what a line mentions, rarely where). `line`: a regular expression a line must match."""

    service: Service
    line: str | None = None
    contains: list[str] | None = None
    within: float = Field(default=5, gt=0)

    @field_validator("contains", mode="before")
    @classmethod
    def _one_text(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _line_or_contains(self) -> "LogExpect":
        if (self.line is None) == (self.contains is None):
            raise ValueError("give either `contains` (texts a line holds) or `line` (a regex)")
        if self.contains is not None and not (self.contains and all(self.contains)):
            raise ValueError("`contains` needs at least one non-empty text, and no empty ones")
        return self


class ErrorExpect(_Args):
    contains: str | None = None


class Action(BaseModel):
    """How an action is written: its argument model, and which field a bare scalar fills."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["ide", "fault", "expect"]
    args: type[_Args]
    shorthand: str | None = None
    summary: str


def _action(
    name: str,
    kind: Literal["ide", "fault", "expect"],
    args: type[_Args],
    summary: str,
    shorthand: str | None = None,
) -> tuple[str, Action]:
    return name, Action(name=name, kind=kind, args=args, shorthand=shorthand, summary=summary)


ACTIONS: dict[str, Action] = dict(
    [
        _action("new_session", "ide", NoArgs, "press New Session (create flow, C-CREATE)"),
        _action(
            "switch_to", "ide", SessionArg, "pick a session in the list (switch flow)", "session"
        ),
        _action("send", "ide", TextArg, "type a message and send it", "text"),
        _action("restart_ide", "ide", NoArgs, "close and reopen the IDE (C-INIT-1)"),
        _action("switch_agent", "ide", SwitchAgentArgs, "ask for another agent", "agent"),
        _action("approve", "ide", NoArgs, "approve the pending tool call"),
        _action("edit", "ide", EditArgs, "approve the pending tool call with new arguments"),
        _action("reject", "ide", RejectArgs, "reject the pending tool call", "feedback"),
        _action("workspace_file", "ide", WorkspaceFile, "put a file in the IDE's workspace"),
        _action("stop", "fault", ServiceArg, "stop a service gracefully", "service"),
        _action("start", "fault", ServiceArg, "start a stopped service again", "service"),
        _action("kill", "fault", ServiceArg, "kill a service (SIGKILL)", "service"),
        _action("restart", "fault", ServiceArg, "stop and start a service", "service"),
        _action("pause", "fault", ServiceArg, "freeze a service (SIGSTOP)", "service"),
        _action("resume", "fault", ServiceArg, "unfreeze a service (SIGCONT)", "service"),
        _action("network", "fault", NetworkArgs, "a network fault on one hop"),
        _action("wait", "fault", SecondsArg, "let time pass", "seconds"),
        _action("expect_state", "expect", StateExpect, "the session manager's state", "state"),
        _action("expect_session", "expect", SessionExpect, "the IDE's current session id"),
        _action("expect_reply", "expect", ReplyExpect, "the agent's final reply", "equals"),
        _action("expect_tool_call", "expect", ToolCallExpect, "a tool call arrived", "tool"),
        _action("expect_history", "expect", HistoryExpect, "a session's history"),
        _action(
            "expect_connected", "expect", SessionArg, "the socket is open to a session", "session"
        ),
        _action(
            "expect_closed", "expect", SessionArg, "the socket to a session was closed", "session"
        ),
        _action("expect_listed", "expect", SessionArg, "a session is in the list", "session"),
        _action("expect_log", "expect", LogExpect, "a service logged a line"),
        _action("expect_error", "expect", ErrorExpect, "the IDE saw an error", "contains"),
    ]
)
STEP_OPTIONS = frozenset({"as", "within", "note"})


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    index: int
    line: int
    action: str
    args: _Args
    save_as: str | None = None
    within: float | None = Field(default=None, gt=0)
    note: str | None = None

    @field_validator("save_as")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not value.isidentifier():
            raise ValueError(f"`as` must be a plain name, got {value!r}")
        return value

    def describe(self) -> str:
        shown = self.args.model_dump(exclude_none=True)
        return f"{self.action} {shown}" if shown else self.action


Capability = Literal["runtime-control", "gateway-control", "kill", "pause", "logs", "runtime-proxy"]


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: str
    plan: str = ""
    profiles: list[str] = Field(default_factory=lambda: ["core"])
    needs: list[Capability] = Field(default_factory=list)
    steps: list[Step]
    source: str = ""

    @field_validator("profiles")
    @classmethod
    def _known_profiles(cls, value: list[str]) -> list[str]:
        for profile in value:
            if profile not in PROFILES:
                raise ValueError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
        return value
