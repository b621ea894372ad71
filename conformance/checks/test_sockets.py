"""W-: the gateway's WebSocket — connect, turns, bad frames, isolation, an unreachable runtime."""

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import Callable

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from conformance.failures import Expect
from conformance.plugin import SocketOpener, deadline
from conformance.probes import (
    NoFrame,
    Socket,
    SocketClosed,
    TurnDidNotEnd,
    open_socket,
)
from conformance.run_state import state
from conformance.target_runner import TargetRunner
from conformance.targets import Capability
from conformance.transcript import Transcript
from contract.frames import AssistantMessageFrame, FrameError, ServerFrame
from contract.requirements import Level, catalogue

from .support import (
    create_session,
    dumped,
    error_frame_for,
    history_messages,
    next_message_works,
    turn,
    user_message,
)

pytestmark = pytest.mark.asyncio


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


def _ends_in_error(frames: list[ServerFrame]) -> bool:
    return frames[-1].type == "error"


def _reply_text(frames: list[ServerFrame]) -> str:
    return "".join(f.text for f in frames if isinstance(f, AssistantMessageFrame))


@pytest.mark.req("W-CONN-1")
async def test_socket_opens_for_a_created_session(
    gateway: httpx.AsyncClient, open_ws: SocketOpener
) -> None:
    """W-CONN-1: "The gateway accepts a WebSocket on /ws/{id} for a session created by POST
    /sessions." Accepted: the upgrade succeeds and the gateway does not close it right after."""
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        try:
            await socket.recv_text(timeout=deadline(0.5))
        except NoFrame:
            pass
        except SocketClosed as closed:
            # A socket that closes at once is one no check can chat on: the prerequisite fails.
            raise state().prerequisite_failed(
                "W-CONN-1", f"the WebSocket on /ws/{session_id} to stay open", str(closed)
            ) from None


def logged_with(phrase: str, session_id: str) -> str:
    """A pattern for a log line holding the phrase and the id, in either order."""
    return f"^(?=.*{re.escape(phrase)})(?=.*{re.escape(session_id)})"


@pytest.mark.req("G-LOG-1")
async def test_gateway_logs_each_accepted_socket(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, sessionlab_target: TargetRunner
) -> None:
    """G-LOG-1: "The gateway logs `WebSocket connected` with the session id on each accepted
    WebSocket." With: anywhere on the same line, before or after the phrase."""
    if not sessionlab_target.supports("gateway", Capability.LOGS):
        pytest.skip("the target offers no gateway logs")
    logs = sessionlab_target.logs("gateway")
    since = len(logs.lines())
    session_id = await create_session(gateway)
    async with open_ws(session_id):
        try:
            async with asyncio.timeout(deadline(5)):
                await logs.wait_for(logged_with("WebSocket connected", session_id), since)
        except TimeoutError:
            Expect("G-LOG-1").fail(
                f"a gateway log line with 'WebSocket connected' and {session_id} within 5 s",
                logs.lines()[since:][-5:] or "no line at all",
            )


@pytest.mark.req("W-CONN-2")
async def test_unknown_session_ids_per_profile(
    sessionlab_target: TargetRunner,
    transcript: Transcript,
    profiles: frozenset[str],
    run_id: str,
) -> None:
    """W-CONN-2: "It also accepts unknown ids (the described system does). Profile strict: MUST
    refuse an unknown id with close code 4404 (before or right after accept)"."""
    level, profile = catalogue()["W-CONN-2"].effective(profiles)
    expect = Expect("W-CONN-2")
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    unknown = f"session_{run_id}{'0' * 8}"
    seconds = deadline(sessionlab_target.turn_timeout)
    outcome = "accepted, and it answered a message"
    closed: int | None = None
    try:
        async with open_socket(
            endpoints.ws_url, unknown, transcript, seconds, endpoints.socket_headers()
        ) as socket:
            await socket.send_json(user_message("anyone there"))
            await socket.recv_text()
    except SocketClosed as exc:
        closed = exc.rcvd.code if exc.rcvd is not None else 1006
        outcome = f"close {closed}"
    except InvalidStatus as exc:
        closed = exc.response.status_code
        outcome = f"HTTP {closed} instead of the upgrade"
    except NoFrame:
        outcome = f"accepted, open, and silent for {seconds:g} s after a message"
    if level is Level.MUST:
        expect.that(
            closed == 4404,
            f"an unknown id refused with close code 4404 (profile {profile})",
            outcome,
        )
    else:
        expect.that(closed is None, "an unknown id accepted (the described behaviour)", outcome)


@pytest.mark.req("W-TURN-1")
async def test_a_message_gets_a_complete_turn(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """W-TURN-1: "Each user_message is answered by one or more frames, the last of which is an
    assistant_message with is_final: true, a tool_call, or an error, within the target's turn
    timeout." The turn this check reads is the prerequisite of every check that chats."""
    expect = Expect("W-TURN-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        frames = await turn(socket, user_message(f"turn check {run_id}"), expect)
        # "The last of which": nothing of this turn comes after the frame that ends it.
        try:
            late = await socket.recv_text(timeout=deadline(0.5))
        except NoFrame:
            return
        except SocketClosed as closed:
            expect.fail("the socket to stay open after the turn", str(closed))
        expect.fail(
            f"nothing after the frame that ended the turn ({frames[-1].type})",
            f"a frame after it: {late}",
        )


def _without_space(text: str) -> str:
    return "".join(text.split())


@pytest.mark.req("W-TURN-2")
async def test_a_turn_lands_in_the_history(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str, partial: Callable[[str], None]
) -> None:
    """W-TURN-2: "After a turn, the session's history holds the user message and the agent's reply
    (R-STREAM-2), visible through the gateway." The reply stored is the turn's streamed text: the
    concatenation of its assistant_message contents, whitespace aside (docs/decisions.md)."""
    expect = Expect("W-TURN-2")
    session_id = await create_session(gateway)
    text = f"history check {run_id}"
    async with open_ws(session_id) as socket:
        frames = await turn(socket, user_message(text), expect)
    streamed = _reply_text(frames)
    if _ends_in_error(frames):
        partial("the reply was not checked: the turn ended in an error frame")
    messages: list[dict[str, object]] = []
    # The history may trail the final frame by a moment: read it until it shows the turn.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(deadline(5)):
            while True:
                messages = await history_messages(gateway, session_id)
                if _turn_stored(messages, text, needs_reply=not _ends_in_error(frames)):
                    break
                await asyncio.sleep(0.1)
    roles = [(m.get("role"), m.get("content")) for m in messages]
    expect.that(("user", text) in roles, f"the user message {text!r} in the history", roles)
    if _ends_in_error(frames):
        return
    # The session holds this one turn; where its reply stands is R-HIST-3's.
    replies = [content for role, content in roles if role == "assistant"]
    expect.that(bool(replies), f"the reply to {text!r} in the history", roles)
    stored = "".join(content for content in replies if isinstance(content, str))
    if frames[-1].type == "tool_call":
        return
    expect.that(
        _without_space(stored) == _without_space(streamed),
        f"the stored reply to equal the streamed text {streamed!r}, whitespace aside",
        stored,
    )


def _turn_stored(messages: list[dict[str, object]], text: str, needs_reply: bool) -> bool:
    roles = [(m.get("role"), m.get("content")) for m in messages]
    if ("user", text) not in roles:
        return False
    return not needs_reply or any(role == "assistant" for role, _ in roles)


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
    gateway: httpx.AsyncClient, open_ws: SocketOpener, what: str, frame: str
) -> None:
    """W-BAD-1: "Text that is not JSON gets an error frame; the connection stays open and the next
    valid message works." W-BAD-2: "A JSON frame with a missing or unknown type, or missing
    required fields, gets an error frame (for an unknown type, content Unknown message type:
    <type>); the connection stays open"."""
    requirement = "W-BAD-1" if what == "not JSON" else "W-BAD-2"
    expect = Expect(requirement)
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        await socket.send_text(frame)
        answer = await error_frame_for(socket, what, expect)
        if what == "an unknown type":
            content = getattr(answer, "content", "")
            expect.that(
                content == "Unknown message type: no_such_type",
                "content 'Unknown message type: no_such_type'",
                content,
            )
        await next_message_works(socket, what, expect)


@pytest.mark.req("W-BAD-3")
async def test_a_binary_frame_gets_an_error_frame_or_close_1003(
    gateway: httpx.AsyncClient, open_ws: SocketOpener
) -> None:
    """W-BAD-3 (SHOULD): "A binary frame gets an error frame (the connection stays open and the
    next valid message works) or a close with code 1003; the socket never goes silent"."""
    expect = Expect("W-BAD-3")
    what = "an error frame or close 1003 for a binary frame"
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        await socket.send_bytes(b"\xff\x00binary")
        try:
            answer = await socket.recv_frame()
        except SocketClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            expect.that(code == 1003, what, str(closed))
            return
        except NoFrame as silence:
            expect.fail(what, str(silence))
        except FrameError as exc:
            expect.fail(what, f"an invalid frame: {exc}")
        expect.that(answer.type == "error", what, dumped([answer]))
        await next_message_works(socket, "a binary frame", expect)


# JSON's grammar allows a lone surrogate escape, yet no Unicode text holds one: whether the
# frame is refused or its turn answered, the gateway must not drop the connection
# (docs/decisions.md).
LONE_SURROGATE = '{"type": "user_message", "role": "user", "content": "half \\ud800 a pair"}'


@pytest.mark.req("W-BAD-1")
async def test_a_lone_surrogate_escape_gets_an_answer_on_a_socket_that_stays_open(
    gateway: httpx.AsyncClient, open_ws: SocketOpener
) -> None:
    """W-BAD-1: "Text that is not JSON gets an error frame; the connection stays open and the next
    valid message works." A lone surrogate escape is JSON, yet no Unicode text: as decided in
    docs/decisions.md (Generated inputs), an error frame or a turn, on a connection that stays
    open and works. The session's history must still read (R-HIST-1) whatever was stored."""
    expect = Expect("W-BAD-1")
    what = "an error frame or a reply for a user_message holding a lone surrogate \\ud800"
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        await socket.send_text(LONE_SURROGATE)
        try:
            await socket.turn()
        except (SocketClosed, TurnDidNotEnd) as exc:
            expect.fail(what, str(exc))
        except FrameError as exc:
            expect.fail(what, f"an invalid frame: {exc}")
        await next_message_works(socket, "a lone surrogate", expect)
    await history_messages(gateway, session_id, odd=True)


async def _quiet(socket: Socket) -> str | None:
    """The next frame within a short while, or None when the socket stays quiet."""
    try:
        return await socket.recv_text(timeout=deadline(0.5))
    except NoFrame:
        return None


@pytest.mark.req("W-ISO-1")
async def test_frames_never_cross_to_another_sessions_socket(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """W-ISO-1: "Frames of one session are never delivered on another session's connection."

    Two sockets chat at once: a reply that quotes its message must not show the other's text.
    Then each chats alone while the other is idle: a frame on the idle socket can only be another
    session's, whatever the agent answers.
    """
    expect = Expect("W-ISO-1")
    first = await create_session(gateway)
    second = await create_session(gateway)
    async with open_ws(first) as one, open_ws(second) as two:
        for round_ in range(3):
            text_one, text_two = f"alpha{round_} {run_id}", f"omega{round_} {run_id}"
            frames_one, frames_two = await asyncio.gather(
                turn(one, user_message(text_one), expect),
                turn(two, user_message(text_two), expect),
            )
            seen_one, seen_two = _reply_text(frames_one), _reply_text(frames_two)
            expect.that(
                "omega" not in seen_one, f"no frame of {second} on {first}'s socket", seen_one
            )
            expect.that(
                "alpha" not in seen_two, f"no frame of {first} on {second}'s socket", seen_two
            )
        # What each turn may still have sent after its end is W-TURN-1's: read it off first.
        for _ in range(10):
            if await _quiet(one) is None and await _quiet(two) is None:
                break
        for talking, idle, speaker, listener in (
            (one, two, first, second),
            (two, one, second, first),
        ):
            await turn(talking, user_message(f"alone {run_id}"), expect)
            stray = await _quiet(idle)
            expect.that(
                stray is None,
                f"nothing on the idle socket of {listener} while {speaker} chats",
                stray,
            )


@pytest.mark.req("W-DOWN-1")
async def test_runtime_down_gives_an_error_frame_and_the_socket_recovers(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, sessionlab_target: TargetRunner
) -> None:
    """W-DOWN-1: "With the runtime unreachable, a user_message gets an error frame and the
    connection stays open; once the runtime is back, the next message works on the same
    connection"."""
    if not sessionlab_target.supports("runtime", Capability.STOP):
        pytest.skip("the target offers no control of its runtime (stop/start)")
    expect = Expect("W-DOWN-1")
    session_id = await create_session(gateway)
    async with open_ws(session_id) as socket:
        await turn(socket, user_message("before"), expect)
        await sessionlab_target.stop_service("runtime")
        try:
            await socket.send_json(user_message("while down"))
            try:
                frames = await socket.turn()
            except (TurnDidNotEnd, SocketClosed) as exc:
                expect.fail("an error frame while the runtime is down", str(exc))
            except FrameError as exc:
                expect.fail("an error frame while the runtime is down", f"an invalid frame: {exc}")
            expect.that(
                _ends_in_error(frames), "an error frame while the runtime is down", dumped(frames)
            )
        finally:
            await sessionlab_target.start_service("runtime")
        # The runtime may take a moment to answer again: retry on the same socket.
        recovered: list[ServerFrame] = []
        seconds = deadline(15)
        try:
            async with asyncio.timeout(seconds):
                for attempt in itertools.count():
                    await socket.send_json(user_message(f"after {attempt}"))
                    recovered = await socket.turn()
                    if not _ends_in_error(recovered):
                        break
                    await asyncio.sleep(0.3)
        except (TimeoutError, SocketClosed, FrameError) as exc:
            expect.fail(
                f"the same socket to work again within {seconds:g} s of the runtime's return",
                str(exc) or f"no turn without an error; the last: {dumped(recovered)}",
            )
