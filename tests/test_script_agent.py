"""The script agent as a pure function: directives in, decided turns out."""

from dataclasses import replace

import pytest

from contract.bodies import Message
from contract.frames import (
    AgentSwitchedFrame,
    AssistantMessageFrame,
    HitlDecisionFrame,
    SwitchAgentFrame,
    ToolCallFrame,
    ToolResultFrame,
    UserMessageFrame,
)
from reference.runtime.script_agent import (
    AWAITING_APPROVAL,
    AWAITING_RESULT,
    DONE,
    AgentSwitch,
    PendingCall,
    respond,
)


def call_ids() -> str:
    return "call_1"


WAITING = PendingCall(
    call_id="call_1",
    tool_name="write_file",
    arguments={"path": "a"},
    requires_approval=True,
    state=AWAITING_APPROVAL,
)


def test_empty_text_gets_one_empty_final_chunk() -> None:
    turn = respond(UserMessageFrame(content="", role="user"), "orchestrator", None, call_ids)
    assert turn.frames == [AssistantMessageFrame(content="", is_final=True)]
    assert turn.messages[-1] == Message(role="assistant", content="")


def test_approve_directive_asks_for_approval() -> None:
    turn = respond(
        UserMessageFrame(content='/approve write_file {"path": "a"}', role="user"),
        "orchestrator",
        None,
        call_ids,
    )
    assert turn.frames == [
        ToolCallFrame(
            call_id="call_1",
            tool_name="write_file",
            arguments={"path": "a"},
            requires_approval=True,
        )
    ]
    assert turn.calls == [WAITING]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("/tool", "a tool name is required"),
        (
            "/tool x {bad",
            "tool arguments are not JSON: Expecting property name enclosed in double quotes:"
            " line 1 column 2 (char 1)",
        ),
        ("/tool x [1]", "tool arguments must be a JSON object"),
        ("/switch nobody", "Unknown agent type: nobody"),
    ],
)
def test_malformed_directives_end_in_an_error(text: str, error: str) -> None:
    turn = respond(UserMessageFrame(content=text, role="user"), "orchestrator", None, call_ids)
    assert turn.error == error
    assert turn.frames == []


def test_approve_decision_sends_nothing_and_awaits_the_ides_result() -> None:
    decision = HitlDecisionFrame(call_id="call_1", decision="approve")
    turn = respond(decision, "orchestrator", WAITING, call_ids)
    assert (turn.frames, turn.messages, turn.error) == ([], [], None)
    assert turn.calls == [replace(WAITING, state=AWAITING_RESULT, decision="approve")]


def test_the_ides_result_after_an_approval_continues_the_turn() -> None:
    approved = replace(WAITING, state=AWAITING_RESULT, decision="approve")
    result = {"success": True, "bytes_written": 3}
    turn = respond(
        ToolResultFrame(call_id="call_1", result=result), "orchestrator", approved, call_ids
    )
    assert turn.messages[0].role == "tool"
    last = turn.frames[-1]
    assert isinstance(last, AssistantMessageFrame)
    assert last.is_final


def test_edit_decision_carries_the_modified_arguments() -> None:
    decision = HitlDecisionFrame(
        call_id="call_1", decision="edit", modified_arguments={"path": "b"}
    )
    turn = respond(decision, "orchestrator", WAITING, call_ids)
    assert turn.frames == []
    assert turn.calls[0].arguments == {"path": "b"}


def test_edit_without_arguments_is_an_error() -> None:
    decision = HitlDecisionFrame(call_id="call_1", decision="edit")
    assert respond(decision, "orchestrator", WAITING, call_ids).error == (
        "An edit decision needs modified_arguments"
    )


def test_reject_records_a_tool_message_and_ends_the_turn() -> None:
    decision = HitlDecisionFrame(call_id="call_1", decision="reject", feedback="no")
    turn = respond(decision, "orchestrator", WAITING, call_ids)
    assert turn.messages[0] == Message(
        role="tool", content="rejected: no", tool_call_id="call_1", name="write_file"
    )
    assert turn.calls[0].state == DONE
    last = turn.frames[-1]
    assert isinstance(last, AssistantMessageFrame)
    assert last.is_final


def test_the_ides_result_after_a_rejection_is_accepted_without_a_frame() -> None:
    rejected = replace(WAITING, state=DONE, decision="reject")
    refusal = ToolResultFrame(call_id="call_1", error="[Operation rejected by user] no")
    turn = respond(refusal, "orchestrator", rejected, call_ids)
    assert (turn.frames, turn.messages, turn.calls, turn.error) == ([], [], [], None)


def test_a_second_result_for_an_answered_call_is_an_error() -> None:
    answered = replace(WAITING, state=DONE, decision="approve")
    again = ToolResultFrame(call_id="call_1", result="x")
    assert respond(again, "orchestrator", answered, call_ids).error is not None


def test_decision_for_a_call_not_awaiting_approval_is_an_error() -> None:
    decision = HitlDecisionFrame(call_id="call_1", decision="approve")
    done = replace(WAITING, state=DONE)
    assert respond(decision, "orchestrator", done, call_ids).error is not None
    assert respond(decision, "orchestrator", None, call_ids).error is not None


def test_result_for_a_call_still_awaiting_approval_is_an_error() -> None:
    result = ToolResultFrame(call_id="call_1", result="x")
    assert respond(result, "orchestrator", WAITING, call_ids).error is not None


def test_switch_agent_frame_switches_and_answers_the_content() -> None:
    frame = SwitchAgentFrame(agent_type="coder", content="write it", reason="code needed")
    turn = respond(frame, "orchestrator", None, call_ids)
    assert turn.switch == AgentSwitch("orchestrator", "coder", "code needed")
    assert isinstance(turn.frames[0], AgentSwitchedFrame)
    assert turn.frames[0].to_agent == "coder"
    assert [m.content for m in turn.messages] == ["write it", "write it"]


def test_switch_directive_ends_with_a_final_reply() -> None:
    turn = respond(UserMessageFrame(content="/switch debug", role="user"), "coder", None, call_ids)
    assert turn.switch == AgentSwitch("coder", "debug", "requested in chat")
    last = turn.frames[-1]
    assert isinstance(last, AssistantMessageFrame)
    assert last.is_final
