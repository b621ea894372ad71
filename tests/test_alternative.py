"""The independently written aiohttp + sqlite3 stack runs as a process target and speaks the
protocol in its own way: 201 on create, `detail` errors passed on as `error`, a fixed reply that
is no echo, the gateway under /api/v1 with one key for both sides, strict refusals."""

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from conformance.targets.process_target import ProcessTarget
from scenarios.loader import load_scenarios
from tests.broken.harness import statuses
from tests.fixtures.alternative.agent import ACKNOWLEDGEMENT
from tests.fixtures.alternative.harness import (
    REPO,
    TARGET_FILE,
    alternative_environment,
    judged,
    started,
    verify_alternative,
)
from tests.fixtures.stack import deadline
from tests.fixtures.thirdparty.harness import client

PLANS = REPO / "scenarios" / "plans"


@pytest.fixture
async def alternative(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[ProcessTarget]:
    async with started(TARGET_FILE, monkeypatch, tmp_path / "run") as target:
        yield target


async def turn(socket: Any) -> list[dict[str, Any]]:
    """Frames up to the final reply or an error."""
    frames = []
    async with asyncio.timeout(deadline(10)):
        while True:
            frame = json.loads(await socket.recv())
            frames.append(frame)
            if frame["type"] == "error" or frame.get("is_final"):
                return frames


async def test_rest_through_the_gateway_under_its_base_path_with_the_shared_key(
    alternative: ProcessTarget,
) -> None:
    endpoints = alternative.endpoints
    assert endpoints.gateway_url.endswith("/api/v1")
    assert endpoints.client_key == endpoints.internal_key
    async with client(endpoints) as gateway:
        created = await gateway.post("/sessions")
        assert created.status_code == 201
        session_id = created.json()["session_id"]
        assert created.json()["current_agent"] == "orchestrator"
        assert (await gateway.get(f"/sessions/{session_id}/history")).json()["messages"] == []
        assert (await gateway.get(f"/agents/{session_id}/current")).status_code == 200
        unknown = await gateway.get("/sessions/session_0000000000000000/history")
        assert unknown.status_code == 404
        assert unknown.json()["error"] == "session not found"
        assert (
            await gateway.get("/sessions", headers={"X-Internal-Auth": "no"})
        ).status_code == 401
    async with httpx.AsyncClient(base_url=endpoints.runtime_url or "", trust_env=False) as runtime:
        refused = await runtime.get("/sessions")
        assert refused.status_code == 401
        assert refused.json() == {"detail": "unauthorized"}
        assert (await runtime.get("/health")).json()["status"] == "healthy"
    async with asyncio.timeout(deadline(5)):
        await alternative.logs("runtime").wait_for(f"Created new session: {session_id}")


async def test_a_turn_over_the_socket_is_a_fixed_reply_stored_with_the_message(
    alternative: ProcessTarget,
) -> None:
    endpoints = alternative.endpoints
    async with client(endpoints) as gateway:
        session_id = (await gateway.post("/sessions")).json()["session_id"]
        async with websockets.connect(f"{endpoints.ws_url}/ws/{session_id}") as socket:
            await socket.send(
                json.dumps({"type": "user_message", "content": "ping", "role": "user"})
            )
            frames = await turn(socket)
            assert [frame["content"] for frame in frames] == list(ACKNOWLEDGEMENT)
            assert frames[-1]["is_final"] is True
            await socket.send(b"\x00binary")
            assert (await turn(socket))[0]["type"] == "error"
            await socket.send(json.dumps({"type": "teleport"}))
            assert await turn(socket) == [
                {"type": "error", "content": "Unknown message type: teleport"}
            ]
        history = (await gateway.get(f"/sessions/{session_id}/history")).json()
    assert history["messages"] == [
        {"role": "user", "content": "ping"},
        {"role": "assistant", "content": "".join(ACKNOWLEDGEMENT)},
    ]
    async with asyncio.timeout(deadline(5)):
        await alternative.logs("gateway").wait_for(rf"\[{session_id}\] WebSocket connected")


async def test_strict_refusals_and_tool_fields_kept_across_a_runtime_restart(
    alternative: ProcessTarget,
) -> None:
    endpoints = alternative.endpoints
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with websockets.connect(f"{endpoints.ws_url}/ws/session_0000000000000000") as socket:
            await asyncio.wait_for(socket.recv(), deadline(5))
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404
    async with httpx.AsyncClient(
        base_url=endpoints.runtime_url or "",
        headers=endpoints.runtime_headers(),
        timeout=deadline(10),
        trust_env=False,
    ) as runtime:
        unknown = await runtime.post(
            "/agent/message/stream",
            json={
                "session_id": "session_0000000000000000",
                "message": {"type": "user_message", "content": "hi", "role": "user"},
            },
        )
        assert unknown.status_code == 404
        session_id = (await runtime.post("/sessions")).json()["session_id"]
        tool_result = {"type": "tool_result", "call_id": "call-7", "tool_name": "ls", "result": [1]}
        streamed = await runtime.post(
            "/agent/message/stream", json={"session_id": session_id, "message": tool_result}
        )
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert 'event:done\r\ndata:{"status": "completed"}\r\n\r\n' in streamed.text
        await alternative.restart_service("runtime")
        messages = (await runtime.get(f"/sessions/{session_id}/history")).json()["messages"]
    assert messages[0] == {"role": "tool", "content": "[1]", "tool_call_id": "call-7", "name": "ls"}
    assert messages[1]["role"] == "assistant"


def test_verify_in_the_strict_profile_says_it_conforms() -> None:
    report = verify_alternative(extra=("--profile", "strict"))
    assert report["exit_code"] == 0, report["stdout"][-3000:]
    assert "\nCONFORMS\n" in report["stdout"]
    found = judged(statuses(report))
    claimed = {r["id"] for r in report["requirements"] if r["profile"] in ("core", "strict")}
    assert {k: v for k, v in found.items() if k in claimed and v != "passed"} == {}
    assert {k: v for k, v in found.items() if v not in ("passed", "skipped")} == {}


def test_every_core_plan_passes_and_the_scripted_ones_skip(tmp_path: Path) -> None:
    report_path = tmp_path / "plans.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessionlab.cli",
            "run",
            str(PLANS),
            "--target",
            str(TARGET_FILE),
            "--junit-xml",
            str(tmp_path / "plans.xml"),
            "--json",
            str(report_path),
        ],
        cwd=REPO,
        env=alternative_environment(),
        capture_output=True,
        text=True,
        timeout=deadline(300),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    outcomes = {
        s["id"]: (s["status"], s["message"])
        for s in json.loads(report_path.read_text())["scenarios"]
    }
    plans = load_scenarios(sorted(PLANS.glob("*.yaml")))
    scripted = {plan.id for plan in plans if "scripted" in plan.profiles}
    assert scripted
    assert {
        plan
        for plan, (status, reason) in outcomes.items()
        if status == "skipped" and "does not claim profile 'scripted'" in reason
    } == scripted
    # Launched as processes behind a fault proxy, it can be killed, frozen and cut: nothing else
    # is skipped.
    assert {plan for plan, (status, _) in outcomes.items() if status == "passed"} == {
        plan.id for plan in plans
    } - scripted
    assert (tmp_path / "plans.xml").read_text().count("<testcase") == len(plans)
