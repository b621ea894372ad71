"""The contract as code: frame parsing, SSE framing, the requirement catalogue, the schemas."""

import json
import re
from pathlib import Path

import pytest

from contract import ids, sse
from contract.bodies import Message
from contract.frames import (
    AgentSwitchedFrame,
    FrameError,
    UserMessageFrame,
    parse_client_frame,
    parse_server_frame,
)
from contract.requirements import Level, catalogue, requirement
from sessionlab.schemas import render_schemas, stale_schemas


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(
            "not json", "Invalid JSON: Expecting value: line 1 column 1 (char 0)", id="text"
        ),
        pytest.param("[1]", "Invalid message: a frame must be a JSON object", id="array"),
        pytest.param(
            '{"type": "user_message", "content": "\\udc00", "role": "user"}',
            "Invalid JSON: a \\u escape names a lone surrogate, which is not a character",
            id="lone-surrogate",
        ),
        pytest.param("{}", "Invalid message: missing message type", id="no-type"),
        pytest.param('{"type": 3}', "Invalid message: type must be a string", id="int-type"),
        pytest.param('{"type": "foo"}', "Unknown message type: foo", id="unknown-type"),
        pytest.param(
            '{"type": "user_message", "role": "user"}',
            "Invalid user_message frame: content: Field required",
            id="missing-field",
        ),
        pytest.param(
            '{"type": "user_message", "content": 5, "role": "user"}',
            "Invalid user_message frame: content: Input should be a valid string",
            id="wrong-type",
        ),
        pytest.param(
            '{"type": "hitl_decision", "call_id": "c", "decision": "maybe"}',
            "Invalid hitl_decision frame: decision: Input should be 'approve', 'edit' or 'reject'",
            id="bad-enum",
        ),
    ],
)
def test_malformed_client_frame_is_refused_with_its_reason(text: str, error: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text)
    assert str(caught.value) == error


def test_valid_user_message_parses_to_its_model() -> None:
    frame = parse_client_frame('{"type": "user_message", "content": "hi", "role": "user"}')
    assert frame == UserMessageFrame(content="hi", role="user")


def test_agent_switched_accepts_agents_nested_in_metadata() -> None:
    frame = parse_server_frame(
        '{"type": "agent_switched", "metadata": {"from_agent": "a", "to_agent": "b"}}'
    )
    assert isinstance(frame, AgentSwitchedFrame)
    assert (frame.switched_from, frame.switched_to) == ("a", "b")


def test_agent_switched_without_agents_is_refused() -> None:
    with pytest.raises(FrameError, match="from_agent must be a string"):
        parse_server_frame('{"type": "agent_switched", "content": "x"}')


def test_sse_decoder_joins_events_split_across_chunks() -> None:
    body = sse.encode_event("message", {"a": 1}) + sse.encode_event("done", {"status": "completed"})
    text = body.decode()
    decoder = sse.SSEDecoder()
    events = [event for char in text for event in decoder.feed(char)]
    assert events == [
        sse.SSEEvent("message", '{"a":1}'),
        sse.SSEEvent("done", '{"status":"completed"}'),
    ]


def test_sse_decoder_reads_crlf_comments_and_multiline_data() -> None:
    events = sse.decode_events(": keep-alive\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\ndata: c\n\n")
    assert events == [sse.SSEEvent("x", "a\nb"), sse.SSEEvent("message", "c")]


def test_sse_encoding_keeps_newlines_in_data_on_one_line() -> None:
    encoded = sse.encode_event("message", {"content": "two\nlines"}).decode()
    assert encoded.count("\n") == 3
    assert sse.decode_events(encoded)[0].json() == {"content": "two\nlines"}


def test_message_leaves_absent_optional_fields_out_but_keeps_null_content() -> None:
    assert Message(role="assistant", content=None).model_dump() == {
        "role": "assistant",
        "content": None,
    }


def test_ids_follow_the_protocol_patterns() -> None:
    made = {ids.new_server_session_id() for _ in range(1000)}
    assert len(made) == 1000
    assert all(ids.is_server_session_id(value) for value in made)
    assert ids.new_local_session_id(1_700_000_000_000) == "session_1700000000000"
    assert ids.is_local_session_id(ids.new_local_session_id())


def test_catalogue_holds_every_protocol_id_once() -> None:
    entries = catalogue()
    families = {entry_id.rsplit("-", 1)[0] for entry_id in entries}
    assert {
        "R-AUTH",
        "R-STREAM",
        "G-PROXY",
        "G-DOWN",
        "W-BAD",
        "W-HITL",
        "C-WS",
        "X-DEL",
    } <= families
    assert len(entries) == 61


def test_every_requirement_in_the_contract_document_is_in_the_catalogue() -> None:
    document = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text()
    listed = set(re.findall(r"^\| ([RGWCX]-[A-Z]+-\d+) \|", document, re.MULTILINE))
    assert listed == set(catalogue())


def test_prerequisites_name_requirements_and_never_form_a_circle() -> None:
    entries = catalogue()

    def below(requirement_id: str, seen: tuple[str, ...] = ()) -> None:
        assert requirement_id not in seen, f"a circle: {seen}"
        for need in entries[requirement_id].needs:
            below(need, (*seen, requirement_id))

    for requirement_id in entries:
        below(requirement_id)


def test_strict_profile_raises_the_level_of_tolerant_requirements() -> None:
    assert requirement("W-CONN-2").effective(["core"]) == (Level.MAY, "core")
    assert requirement("W-CONN-2").effective(["core", "strict"]) == (Level.MUST, "strict")


def test_unknown_requirement_id_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown requirement id 'R-NOPE-1'"):
        requirement("R-NOPE-1")


def test_committed_schemas_are_current() -> None:
    assert stale_schemas() == [], "run `sessionlab schemas` and commit the result"


def test_client_frame_schema_is_a_union_over_the_four_types() -> None:
    schema = json.loads(render_schemas()["ClientFrame.json"])
    assert sorted(schema["discriminator"]["mapping"]) == [
        "hitl_decision",
        "switch_agent",
        "tool_result",
        "user_message",
    ]
