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
from simulators.durability.schedule import parse_name
from simulators.ide.settings import CLIENTS as CLIENTS
from simulators.ide.settings import Client as Client

Service = Literal["runtime", "gateway"]
Hop = Literal["ide", "runtime"]
State = Literal["loading", "loaded", "newSessionCreated", "sessionSwitched", "error"]
ChatKind = Literal["user", "assistant", "tool_result", "tool_call", "agent_switch", "error"]
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


class ScheduledFault(_Args):
    at: float = Field(ge=0)
    fault: str
    hold: float = Field(default=0, ge=0)
    ms: int = Field(default=0, ge=0)

    @field_validator("fault")
    @classmethod
    def _known(cls, value: str) -> str:
        parse_name(value)  # ScheduleError is a ValueError: reported at the step's line
        return value


class DurabilityArgs(_Args):
    """Many IDEs at work under a fault schedule, then the history checker (X-DUR-1): `faults` is
    a count drawn from `seed` (among `only`, if given), or the schedule itself."""

    ides: int = Field(default=10, ge=1, le=1000)
    faults: int | list[ScheduledFault] = 10
    seed: int | None = None
    only: list[str] = Field(default_factory=list)

    @field_validator("faults", mode="before")
    @classmethod
    def _named_faults(cls, value: Any) -> Any:
        # Before the union is tried: its first branch (a count) would hide the name's fault.
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and "fault" in item:
                    parse_name(str(item["fault"]))
        return value

    @field_validator("only")
    @classmethod
    def _known_names(cls, value: list[str]) -> list[str]:
        for name in value:
            parse_name(name)
        return value


class StateExpect(_Args):
    """One state whatever the client model, or one per model: the shipped IDE's session manager
    ends a create or a switch in `loaded`, where the designed one says `newSessionCreated` or
    `sessionSwitched`."""

    state: State | None = None
    designed: State | None = None
    shipped: State | None = None

    @model_validator(mode="after")
    def _one_way(self) -> "StateExpect":
        per_client = [client for client in CLIENTS if getattr(self, client) is not None]
        if self.state is not None and per_client:
            raise ValueError("give `state` or a state per client model, not both")
        if self.state is None and not per_client:
            raise ValueError(f"give `state`, or a state per client model ({', '.join(CLIENTS)})")
        return self

    def for_client(self, client: Client) -> State | None:
        if self.state is not None:
            return self.state
        expected: State | None = getattr(self, client)
        return expected


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
    says what a line mentions, rarely where). `line`: a regular expression a line must match.
    `in_order`: lines in this order, each one the nearest line holding its texts before the next
    one's, so that a pair belongs to one event (this create, not an earlier one)."""

    service: Service
    line: str | None = None
    contains: list[str] | None = None
    in_order: list[list[str]] | None = None
    within: float = Field(default=5, gt=0)

    @field_validator("contains", mode="before")
    @classmethod
    def _one_text(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("in_order", mode="before")
    @classmethod
    def _texts_per_line(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [[item] if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "LogExpect":
        given = [self.line, self.contains, self.in_order]
        if sum(value is not None for value in given) != 1:
            raise ValueError(
                "give one of `contains` (texts a line holds), `line` (a regex) or `in_order` "
                "(lines in order)"
            )
        if self.contains is not None and not (self.contains and all(self.contains)):
            raise ValueError("`contains` needs at least one non-empty text, and no empty ones")
        if self.in_order is not None and (
            len(self.in_order) < 2 or not all(texts and all(texts) for texts in self.in_order)
        ):
            raise ValueError(
                "`in_order` needs two lines or more, each a non-empty text (or list of texts)"
            )
        return self


class StoredExpect(_Args):
    """What the IDE's preferences file holds: the session a restart would restore, its agent."""

    session: str | None = None
    agent: str | None = None

    @model_validator(mode="after")
    def _something(self) -> "StoredExpect":
        if self.session is None and self.agent is None:
            raise ValueError("give `session`, `agent` or both")
        return self


class CreatedExpect(_Args):
    """The body of the last successful `POST /sessions` answer the IDE got (R-CREATE-1).
    `present`: fields that must be there and not null, whatever their value (a timestamp)."""

    session_id: str | None = None
    current_agent: str | None = None
    message_count: int | None = Field(default=None, ge=0)
    present: list[str] = Field(default_factory=list)


class ChatItemExpect(_Args):
    kind: ChatKind
    text: str | None = None
    contains: str | None = None


class ChatExpect(_Args):
    """The chat as the user reads it. Consecutive assistant bubbles count as one reply, their
    texts joined: the shipped IDE shows each chunk as a bubble of its own, the designed one joins
    them into one, and both mean one reply. `items` are looked for in this order, others allowed
    between them (an agent's own tool rounds show as tool items)."""

    items: list[ChatItemExpect] = Field(min_length=1)


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
        _action("open_panel", "ide", NoArgs, "open the assistant panel: the session list"),
        _action("new_session", "ide", NoArgs, "press New Session (create flow, C-CREATE)"),
        _action(
            "switch_to", "ide", SessionArg, "pick a session in the list (switch flow)", "session"
        ),
        _action("send", "ide", TextArg, "type a message and send it", "text"),
        _action("back_to_list", "ide", NoArgs, "go back to the session list"),
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
        _action(
            "durability",
            "fault",
            DurabilityArgs,
            "many IDEs under a fault schedule; fails on an anomaly (X-DUR-1)",
        ),
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
        _action("expect_log", "expect", LogExpect, "a service logged a line, or lines in order"),
        _action(
            "expect_stored",
            "expect",
            StoredExpect,
            "what the IDE's preferences hold (C-CREATE-1)",
            "session",
        ),
        _action(
            "expect_created", "expect", CreatedExpect, "the body of the IDE's last create answer"
        ),
        _action("expect_chat", "expect", ChatExpect, "the chat as the IDE shows it", "items"),
        _action("expect_error", "expect", ErrorExpect, "the IDE saw an error", "contains"),
    ]
)
STEP_OPTIONS = frozenset({"as", "within", "note", "known_failure"})


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    index: int
    line: int
    action: str
    args: _Args
    save_as: str | None = None
    within: float | None = Field(default=None, gt=0)
    note: str | None = None
    # Client model -> why the real client cannot do what this step asks.
    known_failure: dict[Client, str] = Field(default_factory=dict)

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
    clients: list[Client] = Field(default_factory=lambda: list(CLIENTS), min_length=1)
    steps: list[Step]
    source: str = ""

    @field_validator("profiles")
    @classmethod
    def _known_profiles(cls, value: list[str]) -> list[str]:
        for profile in value:
            if profile not in PROFILES:
                raise ValueError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
        return value
