"""The IDE simulator against the real reference stack: flows, fallback, restore, tools, load."""

import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from contract.ids import is_local_session_id, is_server_session_id
from simulators.ide import Ide, IdeSettings
from simulators.ide.approvals import ApproveAll
from simulators.ide.chat import ChatItem
from simulators.ide.tools import FakeWorkspace
from tests.fixtures.stack import ReferenceStack, deadline


def ide_for(stack: ReferenceStack, tmp_path: Path, name: str = "ide") -> Ide:
    settings = IdeSettings(gateway_url=stack.gateway_url, turn_timeout=deadline(10))
    return Ide(settings, tmp_path / f"{name}.json")


@pytest.fixture
async def ide(reference_stack: ReferenceStack, tmp_path: Path) -> AsyncIterator[Ide]:
    made = ide_for(reference_stack, tmp_path)
    yield made
    await made.close()


def sent_frames(ide: Ide) -> list[dict[str, object]]:
    lines = [line for line in ide.trace.traffic_lines() if line.startswith("WS send {")]
    return [json.loads(line.removeprefix("WS send ")) for line in lines]


def steps(ide: Ide, flow: str) -> list[int]:
    return [e.step for e in ide.trace.events if e.flow == flow and e.step is not None and e.ok]


async def test_create_flow_stores_the_server_id_and_connects(ide: Ide, tmp_path: Path) -> None:
    session_id = await ide.new_session()
    assert is_server_session_id(session_id)
    assert ide.state == "newSessionCreated"
    assert ide.connected_session_id == session_id
    assert steps(ide, "create") == [1, 2, 3, 6, 7, 8, 9]
    assert (tmp_path / "ide.json").read_text() == (
        f'{{"current_session_id": "{session_id}", "last_agent_type": "orchestrator"}}'
    )


async def test_switch_loads_history_and_reconnects_closing_the_old_socket(
    ide: Ide, reference_stack: ReferenceStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessionlab.gateway")
    first = await ide.new_session()
    await ide.send("apples")
    assert await ide.final_reply() == "apples"
    second = await ide.new_session()
    await ide.switch_to(first)
    assert ide.state == "sessionSwitched"
    assert ide.connected_session_id == first
    assert ide.chat.items == [ChatItem("user", "apples"), ChatItem("assistant", "apples")]
    assert ide.closed_session_ids == [first, second]
    # The server saw the old socket go before the new one came (its log lines, in order).
    closed, opened = f"WebSocket disconnected: {second}", f"WebSocket connected: {first}"

    def gateway_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "sessionlab.gateway"]

    async with asyncio.timeout(deadline(5)):
        # Polled: the lines come from the server's thread, no event to wait on.
        while closed not in gateway_lines() or gateway_lines().count(opened) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    lines = gateway_lines()
    last_open = len(lines) - 1 - lines[::-1].index(opened)
    assert lines.index(closed) < last_open
    assert steps(ide, "switch") == [1, 2, 5, 6, 7, 8, 9]


async def test_switch_to_an_unknown_session_keeps_the_current_one(ide: Ide) -> None:
    current = await ide.new_session()
    with pytest.raises(Exception, match="switch step 3: the history of session_0000000000000000"):
        await ide.switch_to("session_0000000000000000")
    assert ide.state == "error"
    assert ide.current_session_id == current
    assert ide.connected_session_id == current


async def test_restart_restores_the_stored_session(
    reference_stack: ReferenceStack, tmp_path: Path
) -> None:
    first = ide_for(reference_stack, tmp_path)
    session_id = await first.new_session()
    await first.send("remember")
    await first.final_reply()
    await first.close()
    again = ide_for(reference_stack, tmp_path)
    try:
        assert await again.start() == session_id
        assert again.connected_session_id == session_id
        assert again.chat.items[0] == ChatItem("user", "remember")
    finally:
        await again.close()


async def test_a_stored_id_the_server_does_not_know_gives_a_new_session(
    reference_stack: ReferenceStack, tmp_path: Path
) -> None:
    (tmp_path / "ide.json").write_text('{"current_session_id": "session_1111111111111111"}')
    ide = ide_for(reference_stack, tmp_path)
    try:
        made = await ide.start()
        assert made != "session_1111111111111111"
        assert is_server_session_id(made)
    finally:
        await ide.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_nothing_listening_gives_a_stored_local_id_and_no_crash(tmp_path: Path) -> None:
    settings = IdeSettings(gateway_url=f"http://127.0.0.1:{_closed_port()}", connect_timeout=2)
    ide = Ide(settings, tmp_path / "ide.json")
    try:
        session_id = await ide.new_session()
    finally:
        await ide.close()
    assert is_local_session_id(session_id)
    assert session_id in (tmp_path / "ide.json").read_text()
    failed = [e.render() for e in ide.trace.events if not e.ok]
    assert any("create step 3 [C-CREATE-2]" in line for line in failed)
    assert any("create step 8 [C-WS-2]" in line and "did not connect" in line for line in failed)
    assert ide.connected_session_id is None


async def test_tool_calls_are_answered_from_the_workspace(ide: Ide) -> None:
    ide.put_file("notes.txt", "green tea")
    session_id = await ide.new_session()
    await ide.send('/tool read_file {"path": "notes.txt"}')
    call = await ide.next_tool_call()
    assert (call["tool_name"], call["requires_approval"]) == ("read_file", False)
    assert await ide.final_reply() == "Tool read_file returned: green tea"
    async with httpx.AsyncClient(base_url=ide.settings.gateway_url) as client:
        history = (await client.get(f"/sessions/{session_id}/history")).json()
    assert history["messages"][2] == {
        "role": "tool",
        "content": "green tea",
        "name": "read_file",
        "tool_call_id": call["call_id"],
    }


@pytest.mark.parametrize(
    ("decision", "arguments", "feedback", "reply", "files"),
    [
        (
            "approve",
            None,
            None,
            r"^Tool write_file returned: wrote 3 characters to a\.txt$",
            {"a.txt": "one"},
        ),
        (
            "edit",
            {"path": "b.txt", "content": "four"},
            None,
            r"^Tool write_file returned: wrote 4 characters to b\.txt$",
            {"b.txt": "four"},
        ),
        ("reject", None, "no", r"^Tool call write_file was rejected\.$", {}),
    ],
)
async def test_approvals_are_decided_by_the_tester_and_the_ide_runs_the_tool(
    ide: Ide,
    decision: str,
    arguments: dict[str, str] | None,
    feedback: str | None,
    reply: str,
    files: dict[str, str],
) -> None:
    """W-HITL-1 / C-TOOL-1: the decision, then the IDE's own tool_result for the same call."""
    workspace = ide.workspace
    assert isinstance(workspace, FakeWorkspace)
    session_id = await ide.new_session()
    await ide.send('/approve write_file {"path": "a.txt", "content": "one"}')
    call = await ide.next_tool_call()
    assert call["requires_approval"] is True
    await ide.decide(decision, arguments, feedback)
    assert re.search(reply, await ide.final_reply())
    assert workspace.files == files
    # The exchange is over: a plain turn on the same socket answers, and nothing came between.
    await ide.send("after")
    assert await ide.final_reply() == "after"
    assert ide.errors == []
    assert ide.chat.tool_calls.empty(), "a second tool_call came for the decided call"
    kinds = [frame["type"] for frame in sent_frames(ide)]
    assert kinds == ["user_message", "hitl_decision", "tool_result", "user_message"]
    async with httpx.AsyncClient(base_url=ide.settings.gateway_url) as client:
        history = (await client.get(f"/sessions/{session_id}/history")).json()
    tools = [m for m in history["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tools] == [call["call_id"]]


async def test_the_designed_edit_sends_the_edited_arguments(ide: Ide) -> None:
    await ide.new_session()
    await ide.send('/approve write_file {"path": "a.txt", "content": "one"}')
    call = await ide.next_tool_call()
    await ide.decide("edit", {"path": "b.txt", "content": "four"}, None)
    await ide.final_reply()
    decision = next(f for f in sent_frames(ide) if f["type"] == "hitl_decision")
    assert decision == {
        "type": "hitl_decision",
        "call_id": call["call_id"],
        "decision": "edit",
        "modified_arguments": {"path": "b.txt", "content": "four"},
    }


async def test_many_ides_create_chat_and_switch_without_errors(
    reference_stack: ReferenceStack, tmp_path: Path
) -> None:
    async def one(index: int) -> None:
        settings = IdeSettings(gateway_url=reference_stack.gateway_url, turn_timeout=deadline(30))
        ide = Ide(settings, tmp_path / f"ide{index}.json", policy=ApproveAll())
        try:
            first = await ide.new_session()
            await ide.send(f"hello {index}")
            assert await ide.final_reply() == f"hello {index}"
            await ide.new_session()
            await ide.switch_to(first)
            await ide.send(f"again {index}")
            assert await ide.final_reply() == f"again {index}"
            assert ide.errors == []
        finally:
            await ide.close()

    async with asyncio.timeout(deadline(60)):
        await asyncio.gather(*(one(index) for index in range(20)))
