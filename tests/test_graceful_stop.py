"""`sessionlab serve` stopped mid-turn: every turn accepted before the stop is acknowledged, a
turn or socket that comes after it is refused, and the sockets then close going away.

Real `sessionlab serve` processes on loopback ports, real sockets, a real SQLite file. The
reference's script agent answers at once; its turns take time here through the runtime's own
setting SESSIONLAB_FRAME_DELAY (seconds it waits before each frame of a reply), so that a stop
finds them in flight. The stop is a real SIGTERM.
"""

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.fixtures.stack import deadline
from tests.test_serve_running import Serving, run_serve, serving, start

__all__ = ["serving"]

# What a stop may close a socket with: going away, or service restart.
STOP_CODES = (1001, 1012)
FRAME_DELAY = 0.25
# Words per message: the script agent streams one frame per word, so a turn takes about 2 s.
WORDS = 8
TURNS = 8
STOPPING_LINE = "Stopping:"


def _both(data_dir: Path) -> list[str]:
    return ["--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(data_dir)]


def _frame(text: str) -> str:
    return json.dumps({"type": "user_message", "content": text, "role": "user"})


def _words(number: int) -> str:
    return " ".join(f"turn{number}-word{index}" for index in range(WORDS))


async def _create(gateway: str, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=gateway, timeout=deadline(10)) as client:
        return [(await client.post("/sessions")).json()["session_id"] for _ in range(count)]


async def _open(gateway: str, session_id: str) -> ClientConnection:
    url = f"{gateway.replace('http', 'ws', 1)}/ws/{session_id}"
    return await connect(url, open_timeout=deadline(5), ping_interval=None)


async def _recv(socket: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(deadline(10)):
        data: dict[str, Any] = json.loads(await socket.recv())
    return data


async def _rest_of_turn(socket: ClientConnection) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = await _recv(socket)
        frames.append(frame)
        if frame["type"] != "assistant_message" or frame["is_final"]:
            return frames


async def _close_code(socket: ClientConnection) -> int | None:
    """How the server closed the socket: read until it does."""
    try:
        async with asyncio.timeout(deadline(15)):
            while True:
                await socket.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("unreachable")


async def _stop_began(served: Serving) -> None:
    """The gateway has logged that its stop began: it refuses from here on."""
    end = time.monotonic() + deadline(10)
    while STOPPING_LINE not in served.log_so_far():
        assert time.monotonic() < end, f"no {STOPPING_LINE!r} line:\n{served.log_so_far()}"
        # The log is read by another thread; there is no event to wait on.
        await asyncio.sleep(0.02)


def _exit_code(served: Serving) -> int:
    try:
        return served.process.wait(timeout=deadline(30))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"serve did not exit after SIGTERM:\n{served.log_so_far()}") from None


def test_sigterm_acknowledges_every_accepted_turn_refuses_later_ones_and_closes_going_away(
    tmp_path: Path, serving: list[Serving]
) -> None:
    served = start(
        serving,
        *_both(tmp_path),
        # The grace period from its variable, as a process manager's unit file would set it.
        env={"SESSIONLAB_FRAME_DELAY": str(FRAME_DELAY), "SESSIONLAB_GRACE_PERIOD": "20"},
    )
    assert "grace period of 20 s" in served.banner_text
    gateway = served.urls["gateway"]

    async def scenario() -> None:
        sessions = await _create(gateway, TURNS + 1)
        sockets = [await _open(gateway, session_id) for session_id in sessions]
        busy, idle = sockets[:TURNS], sockets[TURNS]
        for number, socket in enumerate(busy):
            await socket.send(_frame(_words(number)))
        # Each turn has begun streaming: accepted, and with most of its reply still to come.
        firsts = [await _recv(socket) for socket in busy]
        assert all(frame["is_final"] is False for frame in firsts), firsts
        served.process.send_signal(signal.SIGTERM)
        await _stop_began(served)
        # A turn sent after the stop began is refused with an error frame, and not stored.
        await idle.send(_frame("too late for this one"))
        refused = await _recv(idle)
        assert refused["type"] == "error", refused
        assert "stopping" in refused["content"]
        # So is a new socket: accepted and closed at once, going away.
        late = await _open(gateway, sessions[0])
        assert await _close_code(late) in STOP_CODES
        # Every turn accepted before the stop is acknowledged: its final frame arrives.
        for number, (socket, first) in enumerate(zip(busy, firsts, strict=True)):
            frames = [first, *await _rest_of_turn(socket)]
            assert frames[-1]["type"] == "assistant_message", frames
            assert frames[-1]["is_final"] is True, frames
            assert "".join(frame["content"] for frame in frames) == _words(number)
        # Then, and only then, the sockets close with 1001 (or 1012).
        codes = [await _close_code(socket) for socket in sockets]
        assert all(code in STOP_CODES for code in codes), codes

    asyncio.run(scenario())
    assert _exit_code(served) == 0
    log = served.log_so_far()
    assert f"Stopping: {TURNS} turn(s) in flight" in log
    assert "cut off" not in log
    assert "Traceback" not in log

    # What was acknowledged is stored, once; the refused message is not.
    again = start(serving, *_both(tmp_path))
    runtime = again.urls["runtime"]
    key = (tmp_path / "internal-key").read_text()
    listed = httpx.get(f"{runtime}/sessions", headers={"X-Internal-Auth": key}).json()
    counts = sorted(session["message_count"] for session in listed["sessions"])
    assert counts == [0] + [2] * TURNS


def test_the_grace_period_bounds_the_stop_and_a_cut_turn_still_gets_its_close_code(
    tmp_path: Path, serving: list[Serving]
) -> None:
    # Each frame takes 2 s: no turn can finish within the grace period of 1 s.
    served = start(
        serving,
        *_both(tmp_path),
        "--grace-period",
        "1",
        env={"SESSIONLAB_FRAME_DELAY": "2"},
    )
    gateway = served.urls["gateway"]

    async def scenario() -> float:
        [session_id] = await _create(gateway, 1)
        socket = await _open(gateway, session_id)
        await socket.send(_frame(_words(0)))
        await asyncio.sleep(0.5)
        stopped_at = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        code = await _close_code(socket)
        assert code in STOP_CODES
        return time.monotonic() - stopped_at

    waited = asyncio.run(scenario())
    assert 0.8 <= waited < deadline(6), waited
    assert _exit_code(served) == 0
    assert "1 turn(s) still in flight are cut off" in served.log_so_far()


def test_a_second_signal_stops_at_once(tmp_path: Path, serving: list[Serving]) -> None:
    served = start(
        serving, *_both(tmp_path), "--grace-period", "60", env={"SESSIONLAB_FRAME_DELAY": "2"}
    )
    gateway = served.urls["gateway"]

    async def scenario() -> None:
        [session_id] = await _create(gateway, 1)
        socket = await _open(gateway, session_id)
        await socket.send(_frame(_words(0)))
        await asyncio.sleep(0.5)
        served.process.send_signal(signal.SIGTERM)
        await _stop_began(served)
        served.process.send_signal(signal.SIGINT)
        assert await _close_code(socket) in STOP_CODES

    began = time.monotonic()
    asyncio.run(scenario())
    assert _exit_code(served) == 0
    assert time.monotonic() - began < deadline(15)


@pytest.mark.parametrize(
    ("given", "sentence"),
    [
        (("--grace-period", "-1"), "--grace-period -1 is not a number of seconds from 0 to 3600"),
        (("--grace-period", "nan"), "--grace-period nan is not a number of seconds from 0 to 3600"),
    ],
)
def test_a_grace_period_it_cannot_keep_is_refused(
    tmp_path: Path, given: tuple[str, ...], sentence: str
) -> None:
    result = run_serve(*_both(tmp_path), *given)
    assert result.returncode == 2
    assert result.stderr == f"sessionlab serve: {sentence}\n"


def test_a_grace_period_from_its_variable_is_refused_by_the_variable_s_name(
    tmp_path: Path,
) -> None:
    result = run_serve(*_both(tmp_path), env={"SESSIONLAB_GRACE_PERIOD": "forever"})
    assert result.returncode == 2
    assert result.stderr == "sessionlab serve: SESSIONLAB_GRACE_PERIOD='forever' is not a number\n"
