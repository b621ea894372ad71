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

from contract.requirements import PROFILES
from simulators.durability.schedule import parse_name
from simulators.ide.settings import CLIENTS as CLIENTS
from simulators.ide.settings import Client as Client

Service = Literal["runtime", "gateway"]
Hop = Literal["ide", "runtime"]
State = Literal["loading", "loaded", "newSessionCreated", "sessionSwitched", "error"]
ChatKind = Literal["user", "assistant", "tool_result", "tool_call", "agent_switch", "error"]
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Args(BaseModel):
    """A step's arguments, one model per way of writing them (scenarios.actions says which
    action takes which); an unknown key is an error of the plan."""

    model_config = ConfigDict(extra="forbid")


class NoArgs(Args):
    pass


class SessionArg(Args):
    session: str


class TextArg(Args):
    text: str


class ServiceArg(Args):
    service: Service


class SecondsArg(Args):
    seconds: float = Field(gt=0, le=600)


class ReplyExpect(Args):
    """With no argument: a final reply with non-empty text, whatever the agent says. The text
    checks suit only an agent whose wording is known (profile `scripted`)."""

    equals: str | None = None
    contains: str | None = None
    matches: str | None = None


class SwitchAgentArgs(Args):
    agent: str
    content: str = ""


class EditArgs(Args):
    arguments: dict[str, Any]


class RejectArgs(Args):
    feedback: str = ""


class ToolCallExpect(Args):
    tool: str | None = None
    requires_approval: bool | None = None


class WorkspaceFile(Args):
    path: str
    content: str


class NetworkArgs(Args):
    hop: Hop
    fault: Literal["down", "up", "cut", "reset", "latency", "timeout", "clear"]
    ms: float | None = Field(default=None, ge=0)
    jitter_ms: float = Field(default=0, ge=0)


class ScheduledFault(Args):
    at: float = Field(ge=0)
    fault: str
    hold: float = Field(default=0, ge=0)
    ms: int = Field(default=0, ge=0)

    @field_validator("fault")
    @classmethod
    def _known(cls, value: str) -> str:
        parse_name(value)  # ScheduleError is a ValueError: reported at the step's line
        return value


class DurabilityArgs(Args):
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


class StateExpect(Args):
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


class SessionExpect(Args):
    matches: str | None = None
    equals: str | None = None


class MessageExpect(Args):
    role: Literal["user", "assistant", "system", "tool"]
    content: str | None = None
    contains: str | None = None


class HistoryExpect(Args):
    """`messages` are looked for in order; other messages may come between them, since an agent
    may add tool calls and their results to a turn. `count` pins the total."""

    session: str | None = None
    count: int | None = Field(default=None, ge=0)
    messages: list[MessageExpect] | None = None
    contains: str | None = None


class LogExpect(Args):
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


class StoredExpect(Args):
    """What the IDE's preferences file holds: the session a restart would restore, its agent."""

    session: str | None = None
    agent: str | None = None

    @model_validator(mode="after")
    def _something(self) -> "StoredExpect":
        if self.session is None and self.agent is None:
            raise ValueError("give `session`, `agent` or both")
        return self


class CreatedExpect(Args):
    """The body of the last successful `POST /sessions` answer the IDE got (R-CREATE-1).
    `present`: fields that must be there and not null, whatever their value (a timestamp)."""

    session_id: str | None = None
    current_agent: str | None = None
    message_count: int | None = Field(default=None, ge=0)
    present: list[str] = Field(default_factory=list)


class ChatItemExpect(Args):
    kind: ChatKind
    text: str | None = None
    contains: str | None = None


class ChatExpect(Args):
    """The chat as the user reads it. Consecutive assistant bubbles count as one reply, their
    texts joined: the shipped IDE shows each chunk as a bubble of its own, the designed one joins
    them into one, and both mean one reply. `items` are looked for in this order, others allowed
    between them (an agent's own tool rounds show as tool items)."""

    items: list[ChatItemExpect] = Field(min_length=1)


class ErrorExpect(Args):
    contains: str | None = None


STEP_OPTIONS = frozenset({"as", "within", "note", "known_failure"})


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    index: int
    line: int
    action: str
    args: Args
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
