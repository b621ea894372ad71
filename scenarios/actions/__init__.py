"""Every action a plan's step may name: how it is written (its argument model, and which field a
bare scalar fills) and what carries it out. The loader validates steps against this table and the
runner dispatches on it; docs/scenarios.md says what each action does."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from scenarios.actions import expect, fault, ide, logs
from scenarios.actions.context import Run
from scenarios.actions.turns import timed_out_waiting
from scenarios.model import (
    Args,
    ChatExpect,
    CreatedExpect,
    DurabilityArgs,
    EditArgs,
    ErrorExpect,
    HistoryExpect,
    LogExpect,
    NetworkArgs,
    NoArgs,
    RejectArgs,
    ReplyExpect,
    SecondsArg,
    ServiceArg,
    SessionArg,
    SessionExpect,
    StateExpect,
    StoredExpect,
    SwitchAgentArgs,
    TextArg,
    ToolCallExpect,
    WorkspaceFile,
)

A = TypeVar("A", bound=Args)


@dataclass(frozen=True)
class Action(Generic[A]):
    """One action: its name in a plan, how it is written, what carries it out."""

    name: str
    args: type[A]
    # The step's arguments come with the plan's variables put in; what it returns is what `as:`
    # saves. The last argument is the step's time bound.
    handler: Callable[[Run, A, float], Awaitable[str | None]]
    shorthand: str | None = None
    # When the step's time ran out: what it awaited and what came instead (arguments, the step's
    # bound, and the moment it began); without one, the runner's generic words.
    timed_out: Callable[[Run, A, float, float], str] | None = None


ACTIONS: dict[str, Action[Any]] = {
    action.name: action
    for action in (
        # IDE actions
        Action("open_panel", NoArgs, ide.open_panel),
        Action("new_session", NoArgs, ide.new_session),
        Action("switch_to", SessionArg, ide.switch_to, "session"),
        Action("send", TextArg, ide.send, "text"),
        Action("back_to_list", NoArgs, ide.back_to_list),
        Action("restart_ide", NoArgs, ide.restart_ide),
        Action("switch_agent", SwitchAgentArgs, ide.switch_agent, "agent"),
        Action("approve", NoArgs, ide.approve),
        Action("edit", EditArgs, ide.edit),
        Action("reject", RejectArgs, ide.reject, "feedback"),
        Action("workspace_file", WorkspaceFile, ide.workspace_file),
        # Faults
        Action("stop", ServiceArg, fault.stop, "service"),
        Action("start", ServiceArg, fault.start, "service"),
        Action("kill", ServiceArg, fault.kill, "service"),
        Action("restart", ServiceArg, fault.restart, "service"),
        Action("pause", ServiceArg, fault.pause, "service"),
        Action("resume", ServiceArg, fault.resume, "service"),
        Action("network", NetworkArgs, fault.network),
        Action("wait", SecondsArg, fault.wait, "seconds"),
        Action("durability", DurabilityArgs, fault.durability),
        # Expectations
        Action("expect_state", StateExpect, expect.expect_state, "state"),
        Action("expect_session", SessionExpect, expect.expect_session),
        Action(
            "expect_reply",
            ReplyExpect,
            expect.expect_reply,
            "equals",
            timed_out_waiting("reply"),
        ),
        Action(
            "expect_tool_call",
            ToolCallExpect,
            expect.expect_tool_call,
            "tool",
            timed_out_waiting("tool call"),
        ),
        Action("expect_history", HistoryExpect, expect.expect_history),
        Action("expect_connected", SessionArg, expect.expect_connected, "session"),
        Action("expect_closed", SessionArg, expect.expect_closed, "session"),
        Action("expect_listed", SessionArg, expect.expect_listed, "session"),
        Action("expect_log", LogExpect, logs.expect_log, timed_out=logs.log_timed_out),
        Action("expect_stored", StoredExpect, expect.expect_stored, "session"),
        Action("expect_created", CreatedExpect, expect.expect_created),
        Action("expect_chat", ChatExpect, expect.expect_chat, "items"),
        Action(
            "expect_error",
            ErrorExpect,
            expect.expect_error,
            "contains",
            timed_out_waiting("error"),
        ),
    )
}
