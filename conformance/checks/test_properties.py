"""Property checks: generated ids, contents, frames and bodies, each failure shrunk by hypothesis to
a minimal example that the failure message shows.

The example-based checks try the cases a person thought of; these try hundreds they did not (with
`--deep`), and report the smallest one that breaks. See `generation.py` for how hypothesis runs
against the target from an async check.

Bodies that are not valid requests have no requirement of their own in the contract; a 5xx for one
counts against the requirement of the endpoint (R-CREATE-1 for `POST /sessions`, R-STREAM-1 for the
agent stream), whose valid requests the contract describes.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import strategies as st

from conformance.failures import Expect
from conformance.plugin import SocketOpener, deadline
from conformance.transcript import Transcript
from contract import sse
from contract.ids import SERVER_ID_PATTERN
from contract.routes import CREATE_SESSION, CURRENT_AGENT, HISTORY, MESSAGE_STREAM, Route

from .generation import (
    CLIENT_TYPES,
    EDGE_CONTENTS,
    Budget,
    create_bodies,
    first_difference,
    for_all,
    malformed_frames,
    message_contents,
    not_json_texts,
    session_ids,
    shown,
    stream_bodies,
)
from .support import (
    compact,
    create_session,
    error_frame_for,
    history_messages,
    next_message_works,
    stream_events,
    turn,
    user_message,
)

pytestmark = pytest.mark.asyncio

IDS = Budget(examples=30, deep_examples=400)
CONTENTS = Budget(examples=20, deep_examples=300)
FRAMES = Budget(examples=20, deep_examples=300)
BODIES = Budget(examples=25, deep_examples=300)
ID_ROUTES = (HISTORY, CURRENT_AGENT)
# One example's time limit, hypothesis's thread waiting on the check's loop.
EXAMPLE_SECONDS = 60
T = TypeVar("T")


async def _for_all(
    strategy: st.SearchStrategy[T],
    check: Callable[[T], Awaitable[None]],
    budget: Budget,
    deep: bool,
    transcript: Transcript,
    always: Sequence[T] = (),
) -> None:
    """for_all with this module's time limit for one example."""
    await for_all(
        strategy,
        check,
        budget=budget,
        deep=deep,
        transcript=transcript,
        timeout=deadline(EXAMPLE_SECONDS),
        always=always,
    )


def _error_body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _judge_unknown_id(
    response: httpx.Response, session_id: str, route: Route, expect: Expect
) -> None:
    """R-HIST-2: "For an unknown id -> 404 with a JSON object carrying a string error (or detail).
    Odd ids (...) give 404 or 422, never 5xx." The body is asked of the 404 alone."""
    request = f"{route} with the id {shown(session_id)}"
    answer = f"{response.status_code} {response.text[:300]}"
    reproduce = f"curl -i '{response.request.url}'"
    if SERVER_ID_PATTERN.fullmatch(session_id):
        expect.that(response.status_code == 404, f"404 for {request}", answer, reproduce)
    else:
        expect.that(
            response.status_code in (404, 422), f"404 or 422 for {request}", answer, reproduce
        )
    # The body is asked of the history's 404 (R-HIST-2); R-AGENTS-2 asks of its own a 404 alone.
    if response.status_code == 404 and route == HISTORY:
        body = _error_body(response)
        expect.that(
            body is not None
            and (isinstance(body.get("error"), str) or isinstance(body.get("detail"), str)),
            f"a JSON object with a string error or detail in the 404 for {request}",
            answer,
            reproduce,
        )


@pytest.mark.req("R-HIST-2")
async def test_generated_unknown_ids_get_404_or_422(
    sessions_api: httpx.AsyncClient, transcript: Transcript, deep: bool
) -> None:
    """R-HIST-2: "For an unknown id -> 404 with a JSON object carrying a string error (or detail).
    Odd ids (unicode, 1,000 characters, ..%2F.., quotes) give 404 or 422, never 5xx."

    Generated ids: any unicode text (controls, slashes, quotes, dots), unknown ids of the server's
    format (these must get 404), runs of path punctuation, and ids up to 1,000 characters; each is
    asked of /sessions/{id}/history and /agents/{id}/current.
    """
    expect = Expect("R-HIST-2")

    async def check(session_id: str) -> None:
        for route in ID_ROUTES:
            response = await sessions_api.get(route.path(session_id=session_id))
            _judge_unknown_id(response, session_id, route, expect)

    await _for_all(session_ids(), check, IDS, deep, transcript)


@pytest.mark.req("G-PROXY-1")
async def test_the_gateway_answers_generated_ids_as_the_runtime_does(
    gateway: httpx.AsyncClient,
    runtime: httpx.AsyncClient,
    transcript: Transcript,
    deep: bool,
) -> None:
    """G-PROXY-1: "... answer what the runtime answers (status and body), for any id the runtime
    accepts." Each generated id is asked of both; the statuses must agree, whatever they are."""
    expect = Expect("G-PROXY-1")

    async def check(session_id: str) -> None:
        for route in ID_ROUTES:
            path = route.path(session_id=session_id)
            direct = await runtime.get(path)
            proxied = await gateway.get(path)
            request = f"{route} with the id {shown(session_id)}"
            expect.that(
                proxied.status_code == direct.status_code,
                f"the runtime's status {direct.status_code} for {request}",
                f"{proxied.status_code} {proxied.text[:300]}",
                f"curl -i '{proxied.request.url}'",
            )

    await _for_all(session_ids(), check, IDS, deep, transcript)


def _stored_user_message(
    messages: list[dict[str, Any]], content: str, expect: Expect, how: str
) -> int:
    """The index of the one user message, after checking it holds exactly `content`."""
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    expect.that(
        len(users) == 1,
        f"the user message {shown(content)} {how} in the history, once",
        f"{len(users)} user messages: {compact(messages)}",
    )
    stored = messages[users[0]].get("content")
    expect.that(
        stored == content,
        f"the user message {how} stored exactly as sent, {shown(content)}",
        first_difference(content, stored),
    )
    return users[0]


def _has_reply(messages: list[dict[str, Any]]) -> bool:
    """A reply in a session of one turn; where it stands is R-HIST-3's, not this check's."""
    return any(m.get("role") in ("assistant", "tool") for m in messages)


@pytest.mark.req("R-STREAM-2")
async def test_generated_contents_streamed_to_the_runtime_are_stored_exactly(
    runtime: httpx.AsyncClient, transcript: Transcript, deep: bool
) -> None:
    """R-STREAM-2: "A user_message is appended to history as {"role": "user", "content": ...}
    before the stream ends; the agent's text is appended as role assistant".

    Generated contents: any unicode text (the empty one and NUL in every run) and long ones up to
    64 KiB, never a directive of the script agent. Each is stored once, exactly as sent: any JSON
    string is content (docs/decisions.md); a stream ending in done leaves a reply stored.
    """
    expect = Expect("R-STREAM-2")

    async def check(content: str) -> None:
        session_id = await create_session(runtime)
        response, events = await stream_events(runtime, session_id, user_message(content))
        expect.that(
            response.status_code == 200,
            f"200 for a user_message with the content {shown(content)}",
            f"{response.status_code} {response.text[:300]}",
        )
        messages = await history_messages(runtime, session_id, odd=True)
        _stored_user_message(messages, content, expect, "sent to the stream")
        if events and events[-1].event == "done":
            expect.that(
                _has_reply(messages),
                f"the reply to {shown(content)} as role assistant",
                compact(messages),
            )

    await _for_all(message_contents(), check, CONTENTS, deep, transcript, always=EDGE_CONTENTS)


@pytest.mark.req("W-TURN-2")
async def test_generated_contents_sent_over_the_socket_come_back_exactly(
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    transcript: Transcript,
    deep: bool,
) -> None:
    """W-TURN-2: "After a turn, the session's history holds the user message and the agent's reply
    (R-STREAM-2), visible through the gateway."

    Generated contents as for R-STREAM-2's property check, sent over a socket and read back through
    the gateway: each stored once, exactly as sent, with a reply unless the turn ended in an error.
    """
    expect = Expect("W-TURN-2")

    async def check(content: str) -> None:
        session_id = await create_session(gateway)
        async with open_ws(session_id) as socket:
            frames = await turn(socket, user_message(content), expect)
        messages = await history_messages(gateway, session_id, odd=True)
        _stored_user_message(messages, content, expect, "sent over the socket")
        if frames[-1].type != "error":
            expect.that(
                _has_reply(messages),
                f"the reply to {shown(content)} in the history",
                compact(messages),
            )

    await _for_all(message_contents(), check, CONTENTS, deep, transcript, always=EDGE_CONTENTS)


@pytest.mark.req("W-BAD-1")
async def test_generated_text_that_is_not_json_gets_an_error_frame(
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    transcript: Transcript,
    deep: bool,
) -> None:
    """W-BAD-1: "Text that is not JSON gets an error frame; the connection stays open and the next
    valid message works."

    Generated texts: arbitrary text that does not parse, and JSON cut short; one to three of them on
    one socket, each answered by an error frame, then a valid message that must work.
    """
    expect = Expect("W-BAD-1")
    session_id = await create_session(gateway)

    async def check(texts: list[str]) -> None:
        async with open_ws(session_id) as socket:
            for text in texts:
                await socket.send_text(text)
                await error_frame_for(socket, f"the text {shown(text)}", expect)
            await next_message_works(socket, f"the text {shown(texts[-1])}", expect)

    await _for_all(
        st.lists(not_json_texts(), min_size=1, max_size=3), check, FRAMES, deep, transcript
    )


@pytest.mark.req("W-BAD-2")
async def test_generated_malformed_frames_get_an_error_frame(
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    transcript: Transcript,
    deep: bool,
) -> None:
    """W-BAD-2: "A JSON frame with a missing or unknown type, or missing required fields, gets an
    error frame (for an unknown type, content Unknown message type: <type>); the connection stays
    open".

    Generated frames: JSON that is not an object, objects without a type, a type that is not a
    string or not known, and each client frame of section 5 with a required field missing or of the
    wrong type or value (docs/decisions.md); one to three on one socket, then a valid message that
    must work.
    """
    expect = Expect("W-BAD-2")
    session_id = await create_session(gateway)

    async def check(frames: list[Any]) -> None:
        async with open_ws(session_id) as socket:
            for frame in frames:
                text = compact(frame)
                await socket.send_text(text)
                what = f"the frame {shown(frame, 120)}"
                answer = await error_frame_for(socket, what, expect)
                kind = frame.get("type") if isinstance(frame, dict) else None
                if isinstance(kind, str) and kind not in CLIENT_TYPES:
                    content = getattr(answer, "content", None)
                    expected = f"Unknown message type: {kind}"
                    expect.that(
                        content == expected,
                        f"the content {shown(expected)} for {what}",
                        shown(content),
                    )
            await next_message_works(socket, f"the frame {shown(frames[-1], 120)}", expect)

    await _for_all(
        st.lists(malformed_frames(), min_size=1, max_size=3), check, FRAMES, deep, transcript
    )


def _body_shown(body: bytes) -> str:
    return shown(body.decode("utf-8", "backslashreplace"), 120)


@pytest.mark.req("R-CREATE-1")
async def test_generated_create_bodies_never_get_a_5xx(
    sessions_api: httpx.AsyncClient, transcript: Transcript, deep: bool
) -> None:
    """R-CREATE-1: "POST /sessions with no body (and with {}) -> 200 or 201 with {"session_id": str,
    "message_count": 0, "current_agent": "orchestrator", "created_at": timestamp}."

    Generated bodies beyond those two: any JSON value, and arbitrary bytes. The contract describes
    the answer to those two only: any other body gets a new session or a 4xx, never a 5xx, and a
    refusal's body is not judged (docs/decisions.md).
    """
    expect = Expect("R-CREATE-1")

    async def check(body: bytes) -> None:
        response = await sessions_api.post(
            CREATE_SESSION.path(), content=body, headers={"Content-Type": "application/json"}
        )
        request = f"{CREATE_SESSION} with the body {_body_shown(body)}"
        answer = f"{response.status_code} {response.text[:300]}"
        expect.that(
            response.status_code in (200, 201) or 400 <= response.status_code < 500,
            f"a created session (200 or 201) or a 4xx refusal for {request}",
            answer,
        )
        if response.status_code < 400:
            # The contract describes the answer to a create; a refusal's body it leaves open.
            parsed = _error_body(response)
            expect.that(parsed is not None, f"a JSON object answering {request}", answer)
            assert parsed is not None
            expect.that(
                isinstance(parsed.get("session_id"), str)
                and parsed.get("message_count") == 0
                and parsed.get("current_agent") == "orchestrator",
                f"a new session (session_id, message_count 0, orchestrator) for {request}",
                parsed,
            )

    await _for_all(create_bodies(), check, BODIES, deep, transcript)


@pytest.mark.req("R-STREAM-1")
async def test_generated_invalid_stream_bodies_get_no_5xx_and_no_broken_stream(
    runtime: httpx.AsyncClient, transcript: Transcript, deep: bool
) -> None:
    """R-STREAM-1 describes the answer to valid bodies only ("with {"session_id": str,
    "message": {"type": ...}} answers text/event-stream: ... then event: done ... or event:
    error"). For a body outside it, sessionlab asks what every answer owes: no 5xx, and a 200 is
    a well-formed stream ending in done or error (docs/decisions.md)."""
    expect = Expect("R-STREAM-1")
    session_id = await create_session(runtime)

    async def check(body: bytes) -> None:
        response = await runtime.post(
            MESSAGE_STREAM.path(), content=body, headers={"Content-Type": "application/json"}
        )
        request = f"{MESSAGE_STREAM} with the invalid body {_body_shown(body)}"
        answer = f"{response.status_code} {response.text[:300]}"
        expect.that(response.status_code < 500, f"no 5xx for {request}", answer)
        if response.status_code == 200:
            events = [event.event for event in sse.decode_events(response.text)]
            expect.that(
                bool(events) and events[-1] in ("done", "error"),
                f"a 4xx, or a stream ending in a done or error event, for {request}",
                answer,
            )

    await _for_all(stream_bodies(session_id), check, BODIES, deep, transcript)
