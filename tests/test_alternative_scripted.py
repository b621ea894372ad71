"""The alternative stack in scripted mode (alternative-scripted.yaml) runs the directives of the
contract's section 7 in its own words, and continues a turn at once after a decision, as the
described runtime does and the reference does not: the profile-`scripted` checks pass on an
implementation that is not their reference, and W-HITL-1 fails on it broken in one way."""

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from conformance.targets.process_target import ProcessTarget
from tests.broken.harness import message, statuses
from tests.fixtures.alternative.agent import ACKNOWLEDGEMENT
from tests.fixtures.alternative.breaks import SCRIPTED_ONLY
from tests.fixtures.alternative.harness import (
    REPO,
    SCRIPTED_TARGET_FILE,
    SHARED_KEY,
    alternative_environment,
    judged,
    started,
    verify_alternative,
)
from tests.fixtures.stack import deadline
from tests.fixtures.thirdparty.harness import client, create_session

SCRIPTED_CHECKS = ("W-TOOL-1", "W-HITL-1", "W-AGENT-1")
# The IDE writes every field out, null included (protocol.md section 5).
TOOL_RAN = {
    "success": True,
    "content": None,
    "lines_read": None,
    "bytes_written": 3,
    "backup_path": None,
    "error": None,
}


@pytest.fixture
async def scripted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[ProcessTarget]:
    async with started(SCRIPTED_TARGET_FILE, monkeypatch, tmp_path / "run") as target:
        yield target


async def send(socket: Any, frame: dict[str, Any]) -> None:
    await socket.send(json.dumps(frame))


async def turn(socket: Any) -> list[dict[str, Any]]:
    """Frames up to the one that ends a turn: a final reply, a tool_call or an error."""
    frames = []
    async with asyncio.timeout(deadline(10)):
        while True:
            frame = json.loads(await socket.recv())
            frames.append(frame)
            if frame["type"] in ("error", "tool_call") or frame.get("is_final"):
                return frames


async def nothing_more(socket: Any) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(socket.recv(), 1.0)


def text(frames: list[dict[str, Any]]) -> str:
    return "".join(f["content"] for f in frames if f["type"] == "assistant_message")


def user(content: str) -> dict[str, Any]:
    return {"type": "user_message", "content": content, "role": "user"}


def decision(call_id: str, decided: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "hitl_decision",
        "call_id": call_id,
        "decision": decided,
        "modified_arguments": fields.get("modified_arguments"),
        "feedback": fields.get("feedback"),
    }


def tool_result(call_id: str, *, result: Any = None, error: str | None = None) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "call_id": call_id,
        "tool_name": "write_file",
        "result": result,
        "error": error,
    }


async def test_directives_call_tools_switch_agents_and_fail_while_plain_text_is_no_echo(
    scripted: ProcessTarget,
) -> None:
    endpoints = scripted.endpoints
    async with client(endpoints) as gateway:
        session_id = await create_session(gateway)
        async with websockets.connect(f"{endpoints.ws_url}/ws/{session_id}") as socket:
            await send(socket, user("tell me /tool read_file"))
            assert text(await turn(socket)) == "".join(ACKNOWLEDGEMENT)
            await send(socket, user('/tool read_file {"path": "a.txt"}'))
            [call] = await turn(socket)
            assert call["tool_name"] == "read_file"
            assert call["arguments"] == {"path": "a.txt"}
            assert call["requires_approval"] is False
            await send(socket, tool_result(call["call_id"], result="green tea"))
            replied = await turn(socket)
            assert replied[-1]["is_final"] is True
            assert "green tea" in replied[-1]["content"]
            await send(socket, user("/switch coder"))
            switched = await turn(socket)
            assert switched[0] == {
                "type": "agent_switched",
                "from_agent": "orchestrator",
                "to_agent": "coder",
                "reason": "asked for in chat",
            }
            await send(socket, user("/switch architect"))
            assert (await turn(socket))[-1] == {
                "type": "error",
                "content": "unknown agent type: architect",
            }
            await send(socket, user("/fail on purpose"))
            assert await turn(socket) == [{"type": "error", "content": "on purpose"}]
            await send(socket, user('/tool read_file ["a.txt"]'))
            assert (await turn(socket))[-1]["type"] == "error"
        current = (await gateway.get(f"/agents/{session_id}/current")).json()
        messages = (await gateway.get(f"/sessions/{session_id}/history")).json()["messages"]
    assert current["current_agent"] == "coder"
    assert messages[3]["tool_calls"][0]["id"] == call["call_id"]
    assert messages[4] == {
        "role": "tool",
        "content": "green tea",
        "name": "read_file",
        "tool_call_id": call["call_id"],
    }
    assert messages[5]["content"] == text(replied)


@pytest.mark.parametrize("decided", ["approve", "edit", "reject"])
async def test_a_decision_is_answered_at_once_and_the_ide_result_after_it_is_taken(
    scripted: ProcessTarget, decided: str
) -> None:
    endpoints = scripted.endpoints
    async with client(endpoints) as gateway:
        session_id = await create_session(gateway)
        async with websockets.connect(f"{endpoints.ws_url}/ws/{session_id}") as socket:
            await send(socket, user('/approve write_file {"path": "a.txt"}'))
            [call] = await turn(socket)
            assert call["requires_approval"] is True
            call_id = call["call_id"]
            rejected = decided == "reject"
            # Back to back, as the IDE sends them.
            await send(
                socket,
                decision(
                    call_id,
                    decided,
                    modified_arguments={"path": "b.txt"} if decided == "edit" else None,
                    feedback="not now" if rejected else None,
                ),
            )
            refusal = "[Operation rejected by user] User rejected operation: write_file"
            await send(
                socket,
                tool_result(call_id, error=refusal)
                if rejected
                else tool_result(call_id, result=TOOL_RAN),
            )
            at_once = await turn(socket)
            answered = await turn(socket)
            await nothing_more(socket)
        messages = (await gateway.get(f"/sessions/{session_id}/history")).json()["messages"]
    for frames in (at_once, answered):
        assert [f["type"] for f in frames] == ["assistant_message"] * len(frames)
        assert frames[-1]["is_final"] is True
    tools = [m for m in messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tools] == [call_id, call_id]
    assert tools[0]["content"] == ("rejected: not now" if rejected else "approved")
    assert tools[1]["content"] == (f"error: {refusal}" if rejected else json.dumps(TOOL_RAN))
    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]


async def test_a_decision_or_result_out_of_turn_gets_an_error_on_a_socket_that_goes_on(
    scripted: ProcessTarget,
) -> None:
    endpoints = scripted.endpoints
    async with client(endpoints) as gateway:
        session_id = await create_session(gateway)
        async with websockets.connect(f"{endpoints.ws_url}/ws/{session_id}") as socket:
            await send(socket, decision("call-unknown", "approve"))
            assert (await turn(socket))[-1]["type"] == "error"
            await send(socket, user('/approve run_tests {"suite": "all"}'))
            [call] = await turn(socket)
            await send(socket, tool_result(call["call_id"], result=TOOL_RAN))
            assert (await turn(socket))[-1]["content"].endswith("awaits a decision, not a result")
            await send(socket, decision(call["call_id"], "edit"))
            assert (await turn(socket))[-1] == {
                "type": "error",
                "content": "an edit decision needs modified_arguments",
            }
            await send(
                socket, decision(call["call_id"], "edit", modified_arguments={"suite": "one"})
            )
            assert (await turn(socket))[-1]["is_final"] is True
            await send(socket, decision(call["call_id"], "approve"))
            assert (await turn(socket))[-1]["type"] == "error"
            await send(socket, user("still there"))
            assert text(await turn(socket)) == "".join(ACKNOWLEDGEMENT)
        history = (await gateway.get(f"/sessions/{session_id}/history")).json()["messages"]
    # What was refused left nothing behind: the call, its approval, and the plain turn after.
    roles = [m["role"] for m in history]
    assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant"]


def test_a_scripted_break_refuses_to_start_unscripted(tmp_path: Path) -> None:
    # Unscripted, what it breaks never runs: the run would pass and prove nothing.
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fixtures.alternative",
            "runtime",
            "--listen",
            "127.0.0.1:9",
            "--db",
            str(tmp_path / "alt.sqlite3"),
        ],
        cwd=REPO,
        env={
            **alternative_environment(),
            "ALT_KEY": SHARED_KEY,
            "ALT_BREAK": "approval_repeats_call",
            "ALT_SCRIPTED": "",
        },
        capture_output=True,
        text=True,
        timeout=deadline(30),
        check=False,
    )
    assert started.returncode == 2
    assert "set ALT_SCRIPTED=1" in started.stderr


def test_verify_with_the_scripted_profile_says_it_conforms() -> None:
    report = verify_alternative(
        extra=("--profile", "strict", "--profile", "scripted"), target=SCRIPTED_TARGET_FILE
    )
    assert report["exit_code"] == 0, report["stdout"][-3000:]
    assert "\nCONFORMS\n" in report["stdout"]
    found = statuses(report)
    assert {check: found[check] for check in SCRIPTED_CHECKS} == dict.fromkeys(
        SCRIPTED_CHECKS, "passed"
    )
    found = judged(found)
    claimed = {
        r["id"] for r in report["requirements"] if r["profile"] in ("core", "strict", "scripted")
    }
    assert {k: v for k, v in found.items() if k in claimed and v != "passed"} == {}


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        ("approval_repeats_call", "no second tool_call"),
        ("approval_result_refused", "no error frame"),
    ],
)
def test_w_hitl_1_fails_on_an_approval_exchange_broken_in_one_way(broken: str, says: str) -> None:
    assert SCRIPTED_ONLY[broken] == "W-HITL-1"
    report = verify_alternative(
        *SCRIPTED_CHECKS,
        extra=("--profile", "scripted"),
        broken=broken,
        target=SCRIPTED_TARGET_FILE,
    )
    assert statuses(report)["W-HITL-1"] == "failed", report["stdout"][-3000:]
    assert says in message(report, "W-HITL-1")
    assert {check: statuses(report)[check] for check in ("W-TOOL-1", "W-AGENT-1")} == {
        "W-TOOL-1": "passed",
        "W-AGENT-1": "passed",
    }
    assert report["exit_code"] == 1
