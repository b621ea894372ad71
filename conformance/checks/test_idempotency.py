"""X-IDEM-1: a user message named by a `client_message_id` is answered once and stored once.

A turn that was stored but whose reply never reached the IDE (a dropped socket, a stopped
gateway) would be stored twice when the IDE sends the message again. With the id, the resend is
answered with the reply stored for the first send. Everything goes through the gateway, as an
IDE's resend does; the checks compare answers with each other and count the check's own text in
the history, so they hold for a real agent as well as for the script agent.
"""

import asyncio
import secrets
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from conformance.failures import Expect
from conformance.plugin import SocketOpener
from conformance.target_runner import TargetRunner
from conformance.targets import Capability
from contract.frames import ServerFrame

from .support import compact, create_session, history_messages, turn

pytestmark = pytest.mark.asyncio

# Resends at once: enough that an unguarded check-then-store lets two of them through.
CONCURRENT = 4
# A copy stored after its answer went out is a copy all the same: the history is read again
# after this pause (seconds).
SETTLE = 0.5


def _named(text: str, client_message_id: str) -> dict[str, Any]:
    return {
        "type": "user_message",
        "content": text,
        "role": "user",
        "client_message_id": client_message_id,
    }


def _new_id(run_id: str) -> str:
    return f"idem-{run_id}-{secrets.token_hex(6)}"


def _shown(frames: list[ServerFrame]) -> str:
    return compact([frame.model_dump(exclude_none=True) for frame in frames])


def _reply(frames: list[ServerFrame]) -> tuple[str, str, str]:
    """What an answer says: its text (chunks joined, whitespace aside, as R-STREAM-2 reads a
    stored reply) and its final frame (its type and what names it: a tool call's id, an error's
    text). How the text is cut into chunks is the server's."""
    text = "".join(
        "".join(frame.text.split()) for frame in frames if frame.type == "assistant_message"
    )
    final = frames[-1]
    if final.type == "tool_call":
        return text, final.type, final.call_id
    if final.type == "error":
        return text, final.type, final.content
    return text, final.type, ""


async def _first_answer(
    open_ws: SocketOpener, session_id: str, frame: dict[str, Any], expect: Expect
) -> list[ServerFrame]:
    """The first send of a named message, answered without an error: only a message that was
    surely stored can be resent."""
    answered = f"the first send of {frame['content']!r} answered without an error"
    async with open_ws(session_id) as socket:
        return await turn(socket, frame, expect, answered)


async def _resend(
    open_ws: SocketOpener, session_id: str, frame: dict[str, Any], expect: Expect
) -> list[ServerFrame]:
    # On a socket of its own, as after the reconnect that made the IDE resend.
    async with open_ws(session_id) as socket:
        return await turn(socket, frame, expect)


def _copies(history: list[dict[str, Any]], text: str) -> int:
    return sum(
        1 for message in history if message.get("role") == "user" and message.get("content") == text
    )


async def _settled_history(gateway: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    """The longer of two reads SETTLE apart: a late second copy counts."""
    first = await history_messages(gateway, session_id)
    await asyncio.sleep(SETTLE)
    second = await history_messages(gateway, session_id)
    return second if len(second) >= len(first) else first


def _same_reply(
    expect: Expect, first: list[ServerFrame], again: list[ServerFrame], what: str
) -> None:
    expect.that(
        _reply(again) == _reply(first),
        f"{what} answered with the stored reply: the text and final frame of {_shown(first)}",
        _shown(again),
    )


@pytest.mark.req("X-IDEM-1")
async def test_a_resend_gets_the_stored_reply_and_the_history_holds_the_message_once(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """X-IDEM-1: "A resend with the same id within a session, on any socket and at any time ...
    gets the stored reply: the same text and the same final frame as the first answer; the message
    and its reply are in the history once". The resend comes on a new socket after the first
    answer, twice; the history's length must not move. Then the same text under a new id is a new
    message: a server that answers by content rather than by id shows."""
    expect = Expect("X-IDEM-1")
    session_id = await create_session(gateway)
    text = f"remember this once {run_id}"
    frame = _named(text, _new_id(run_id))
    first = await _first_answer(open_ws, session_id, frame, expect)
    before = await _settled_history(gateway, session_id)
    expect.that(
        _copies(before, text) == 1,
        f"the history to hold {text!r} once after the first send",
        compact(before),
    )
    for attempt in ("the first resend", "the second resend"):
        again = await _resend(open_ws, session_id, frame, expect)
        _same_reply(expect, first, again, attempt)
    after = await _settled_history(gateway, session_id)
    expect.that(
        _copies(after, text) == 1 and len(after) == len(before),
        f"the history unchanged by the resends: {len(before)} messages, {text!r} once",
        f"{len(after)} messages, {text!r} {_copies(after, text)} times: {compact(after)}",
    )
    fresh = _named(text, _new_id(run_id))
    await _first_answer(open_ws, session_id, fresh, expect)
    later = await _settled_history(gateway, session_id)
    expect.that(
        _copies(later, text) == 2,
        f"the same text under a new id stored as a new message ({text!r} twice)",
        f"{text!r} {_copies(later, text)} times: {compact(later)}",
    )


@pytest.mark.req("X-IDEM-1")
async def test_sends_of_one_message_at_once_are_answered_alike_and_stored_once(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """X-IDEM-1: "... (while the first is still being answered too), gets the stored reply ...
    the message and its reply are in the history once, however many resends come and however many
    at once". The same named message on several sockets of one session at once: every answer has
    the same text and final frame, and the history holds the message once."""
    expect = Expect("X-IDEM-1")
    session_id = await create_session(gateway)
    text = f"sent {CONCURRENT} times at once {run_id}"
    frame = _named(text, _new_id(run_id))
    async with AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(open_ws(session_id)) for _ in range(CONCURRENT)]
        # Each send goes out before any answer is awaited: they meet at the server.
        answers = await asyncio.gather(*(turn(socket, frame, expect) for socket in sockets))
    first = answers[0]
    expect.that(
        first[-1].type != "error",
        f"the message {text!r} answered without an error",
        _shown(first),
    )
    for number, answer in enumerate(answers[1:], start=2):
        _same_reply(expect, first, answer, f"send {number} of {CONCURRENT}")
    history = await _settled_history(gateway, session_id)
    expect.that(
        _copies(history, text) == 1,
        f"the history to hold {text!r} once after {CONCURRENT} sends at once",
        f"{_copies(history, text)} times: {compact(history)}",
    )


@pytest.mark.req("X-IDEM-1")
async def test_the_same_id_in_another_session_is_a_message_of_its_own(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """X-IDEM-1: "The same id in another session is a message of its own there." One id, two
    sessions, two texts: each history holds its own text once and never the other's."""
    expect = Expect("X-IDEM-1")
    shared_id = _new_id(run_id)
    texts = {
        await create_session(gateway): f"{name} session's own words {run_id}"
        for name in ("first", "second")
    }
    for session_id, text in texts.items():
        await _first_answer(open_ws, session_id, _named(text, shared_id), expect)
    for session_id, text in texts.items():
        history = await _settled_history(gateway, session_id)
        others = [other for other in texts.values() if other != text]
        expect.that(
            _copies(history, text) == 1 and not any(_copies(history, o) for o in others),
            f"{session_id}'s history to hold {text!r} once and nothing of the other session",
            compact(history),
        )


@pytest.mark.req("X-IDEM-1")
async def test_a_resend_after_a_runtime_restart_still_gets_the_stored_reply(
    sessionlab_target: TargetRunner,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    run_id: str,
) -> None:
    """X-IDEM-1: "... the message and its reply are in the history once, however many resends
    come ... also across a runtime restart." The first send is answered, the runtime restarted,
    and the resend must get the same reply and leave the history as it was."""
    if not sessionlab_target.supports("runtime", Capability.STOP):
        pytest.skip("the target offers no control of its runtime (stop/start)")
    expect = Expect("X-IDEM-1")
    session_id = await create_session(gateway)
    text = f"said before the restart {run_id}"
    frame = _named(text, _new_id(run_id))
    first = await _first_answer(open_ws, session_id, frame, expect)
    before = await _settled_history(gateway, session_id)
    await sessionlab_target.restart_service("runtime")
    again = await _resend(open_ws, session_id, frame, expect)
    _same_reply(expect, first, again, "the resend after the restart")
    after = await _settled_history(gateway, session_id)
    expect.that(
        _copies(after, text) == 1 and len(after) == len(before),
        f"the history unchanged by the resend: {len(before)} messages, {text!r} once",
        f"{len(after)} messages, {text!r} {_copies(after, text)} times: {compact(after)}",
    )
