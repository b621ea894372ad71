"""W-: the gateway's WebSocket — connect, turns, bad frames, isolation, an unreachable runtime."""

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conformance.contract.frames import AssistantMessageFrame, FrameError, ServerFrame
from conformance.contract.requirements import Level, catalogue
from conformance.failures import Expect
from conformance.plugin import deadline
from conformance.probes import Socket, describe_close
from conformance.target_runner import TargetRunner
from conformance.targets import Capability

from .support import create_session, history_messages, user_message

pytestmark = pytest.mark.asyncio

Opener = Callable[[str], AbstractAsyncContextManager[Socket]]

BAD_FRAMES = [
    ("not JSON", "this is not json"),
    ("a JSON array", "[1, 2]"),
    ("no type", json.dumps({"content": "x", "role": "user"})),
    ("an unknown type", json.dumps({"type": "no_such_type", "content": "x"})),
    ("a missing field", json.dumps({"type": "user_message", "role": "user"})),
    ("a wrong type", json.dumps({"type": "user_message", "content": 42, "role": "user"})),
    ("a non-string type", json.dumps({"type": 7})),
    ("a bad tool_result", json.dumps({"type": "tool_result"})),
]


async def _turn(socket: Socket, text: str, expect: Expect) -> list[ServerFrame]:
    await socket.send_json(user_message(text))
    try:
        return await socket.turn()
    except TimeoutError:
        expect.fail(
            "a turn ending in a final assistant_message, a tool_call or an error", "silence"
        )
    except FrameError as exc:
        expect.fail("valid frames", str(exc))
    except ConnectionClosed as closed:
        expect.fail("the socket to stay open", describe_close(closed))
    raise AssertionError("unreachable")


def _ends_in_error(frames: list[ServerFrame]) -> bool:
    return frames[-1].type == "error"


def _reply_text(frames: list[ServerFrame]) -> str:
    return "".join(f.text for f in frames if isinstance(f, AssistantMessageFrame))


@pytest.mark.req("W-CONN-1", "G-LOG-1")
async def test_socket_opens_for_a_created_session(
    gateway: httpx.AsyncClient, open_ws: Opener, sessionlab_target: TargetRunner
) -> None:
    session_id = await create_session(gateway)
    logs = (
        sessionlab_target.logs("gateway")
        if sessionlab_target.supports("gateway", Capability.LOGS)
        else None
    )
    since = len(logs.lines()) if logs else 0
    try:
        async with open_ws(session_id) as socket:
            await _turn(socket, "hello", Expect("W-CONN-1"))
    except (InvalidStatus, ConnectionClosed, OSError) as exc:
        Expect("W-CONN-1").fail(f"a WebSocket on /ws/{session_id}", repr(exc))
    if logs is None:
        pytest.skip("the target offers no gateway logs (G-LOG-1 not checked)")
    try:
        async with asyncio.timeout(deadline(5)):
            await logs.wait_for(f"WebSocket connected.*{re.escape(session_id)}", since)
    except TimeoutError:
        Expect("G-LOG-1").fail(
            f"a gateway log line 'WebSocket connected' with {session_id}", logs.lines()[since:][-5:]
        )


@pytest.mark.req("W-CONN-2")
async def test_unknown_session_ids_per_profile(
    open_ws: Opener, profiles: frozenset[str], run_id: str
) -> None:
    level, profile = catalogue()["W-CONN-2"].effective(profiles)
    expect = Expect("W-CONN-2")
    unknown = f"session_{run_id}{'0' * 8}"
    try:
        async with open_ws(unknown) as socket:
            await socket.send_json(user_message("anyone there"))
            await socket.recv_text()
            closed = None
    except ConnectionClosed as exc:
        # No close frame at all is an abnormal closure, 1006.
        closed = exc.rcvd.code if exc.rcvd is not None else 1006
    except InvalidStatus as exc:
        closed = exc.response.status_code
    if level is Level.MUST:
        expect.that(
            closed == 4404,
            f"an unknown id refused with close code 4404 (profile {profile})",
            "accepted and answered" if closed is None else f"close/status {closed}",
        )
    else:
        expect.that(closed is None, "an unknown id accepted (the described behaviour)", closed)


@pytest.mark.req("W-TURN-1")
async def test_a_message_gets_a_complete_turn(
    gateway: httpx.AsyncClient, open_ws: Opener, run_id: str
) -> None:
    expect = Expect("W-TURN-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        frames = await _turn(socket, f"turn check {run_id}", expect)
    expect.that(frames[-1].type != "error", "a turn that does not end in an error", frames)


@pytest.mark.req("W-TURN-2")
async def test_a_turn_lands_in_the_history(
    gateway: httpx.AsyncClient, open_ws: Opener, run_id: str
) -> None:
    expect = Expect("W-TURN-2")
    session_id = await create_session(gateway)
    text = f"history check {run_id}"
    roles: list[tuple[object, object]] = []
    async with open_ws(session_id) as socket:
        await socket.send_json(user_message(text))
        # Judged by the history alone, whatever the frames looked like (that is W-TURN-1).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(socket.timeout):
                while True:
                    messages = await history_messages(gateway, session_id)
                    roles = [(m.get("role"), m.get("content")) for m in messages]
                    if ("user", text) in roles and any(
                        role in ("assistant", "tool")
                        for role, _ in roles[roles.index(("user", text)) :]
                    ):
                        return
                    await asyncio.sleep(0.1)
    expect.fail(f"the user message {text!r} and a reply after it in the history", roles)


@pytest.mark.parametrize(
    ("what", "frame"),
    [
        # Each case counts for the requirement it exercises, so one break fails one requirement.
        pytest.param(
            what, frame, id=what, marks=pytest.mark.req("W-BAD-1" if i == 0 else "W-BAD-2")
        )
        for i, (what, frame) in enumerate(BAD_FRAMES)
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays_usable(
    gateway: httpx.AsyncClient, open_ws: Opener, what: str, frame: str
) -> None:
    requirement = "W-BAD-1" if what == "not JSON" else "W-BAD-2"
    expect = Expect(requirement)
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        await socket.send_text(frame)
        try:
            answer = await socket.recv_frame()
        except ConnectionClosed as closed:
            expect.fail(f"an error frame for {what}", describe_close(closed))
        except (TimeoutError, FrameError) as exc:
            expect.fail(f"an error frame for {what}", repr(exc))
        expect.that(answer.type == "error", f"an error frame for {what}", answer)
        if what == "an unknown type":
            content = getattr(answer, "content", "")
            expect.that(
                content == "Unknown message type: no_such_type",
                "content 'Unknown message type: no_such_type'",
                content,
            )
        frames = await _turn(socket, "still here", expect)
        expect.that(frames[-1].type != "error", "the next valid message to work", frames)


@pytest.mark.req("W-BAD-1")
async def test_a_binary_frame_gets_an_error_frame(
    gateway: httpx.AsyncClient, open_ws: Opener
) -> None:
    expect = Expect("W-BAD-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        await socket.send_bytes(b"\xff\x00binary")
        try:
            answer = await socket.recv_frame()
        except (ConnectionClosed, TimeoutError, FrameError) as exc:
            expect.fail("an error frame for a binary frame", repr(exc))
        expect.that(answer.type == "error", "an error frame for a binary frame", answer)
        await _turn(socket, "after binary", expect)


# JSON's grammar allows a lone surrogate escape, yet no Unicode text holds one: whether the
# frame is refused or its turn answered, the gateway must not drop the connection
# (docs/decisions.md).
LONE_SURROGATE = '{"type": "user_message", "role": "user", "content": "half \\ud800 a pair"}'


@pytest.mark.req("W-BAD-1")
async def test_a_lone_surrogate_escape_gets_an_answer_on_a_socket_that_stays_open(
    gateway: httpx.AsyncClient, open_ws: Opener
) -> None:
    expect = Expect("W-BAD-1")
    what = "an error frame or a reply for a user_message holding a lone surrogate \\ud800"
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        await socket.send_text(LONE_SURROGATE)
        try:
            await socket.turn()
        except ConnectionClosed as closed:
            expect.fail(what, describe_close(closed))
        except (TimeoutError, FrameError) as exc:
            expect.fail(what, repr(exc))
        await _turn(socket, "after a lone surrogate", expect)


@pytest.mark.req("W-ISO-1")
async def test_frames_never_cross_to_another_sessions_socket(
    gateway: httpx.AsyncClient, open_ws: Opener, run_id: str
) -> None:
    expect = Expect("W-ISO-1")
    first = await create_session(gateway)
    second = await create_session(gateway)
    async with open_ws(first) as one, open_ws(second) as two:
        for round_ in range(3):
            text_one, text_two = f"alpha{round_} {run_id}", f"omega{round_} {run_id}"
            await one.send_json(user_message(text_one))
            await two.send_json(user_message(text_two))
            frames_one, frames_two = await asyncio.gather(one.turn(), two.turn())
            seen_one, seen_two = _reply_text(frames_one), _reply_text(frames_two)
            expect.that(
                "omega" not in seen_one, f"no frame of {second} on {first}'s socket", seen_one
            )
            expect.that(
                "alpha" not in seen_two, f"no frame of {first} on {second}'s socket", seen_two
            )


@pytest.mark.req("W-DOWN-1")
async def test_runtime_down_gives_an_error_frame_and_the_socket_recovers(
    gateway: httpx.AsyncClient, open_ws: Opener, sessionlab_target: TargetRunner
) -> None:
    if not sessionlab_target.supports("runtime", Capability.STOP):
        pytest.skip("the target offers no control of its runtime (stop/start)")
    expect = Expect("W-DOWN-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        await _turn(socket, "before", expect)
        await sessionlab_target.stop_service("runtime")
        try:
            frames = await _turn(socket, "while down", expect)
            expect.that(
                frames[-1].type == "error", "an error frame while the runtime is down", frames
            )
        finally:
            await sessionlab_target.start_service("runtime")
        # The runtime may take a moment to answer again: retry on the same socket.
        async with asyncio.timeout(deadline(15)):
            for attempt in itertools.count():
                recovered = await _turn(socket, f"after {attempt}", expect)
                if not _ends_in_error(recovered):
                    break
                await asyncio.sleep(0.3)
        expect.that(not _ends_in_error(recovered), "the same socket to work again", recovered)
