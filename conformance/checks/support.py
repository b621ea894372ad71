"""What the checks share: creating sessions, reading bodies, talking SSE and WebSocket."""

import json
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from conformance.failures import CheckFailure, Expect
from conformance.probes import NoFrame, Socket, SocketClosed, TurnDidNotEnd
from conformance.run_state import state
from contract import sse
from contract.frames import FrameError, ServerFrame
from contract.routes import CREATE_SESSION, HISTORY, MESSAGE_STREAM, Route

ODD_IDS = (
    "session_0000000000000000",
    "сессия-😀",
    "x" * 1000,
    "..%2F..",
    "a'b\"c",
    "%00",
    " ",
)


def json_object(response: httpx.Response, expect: Expect, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    expect.that(
        isinstance(body, dict),
        f"{what} with a JSON object body",
        f"{response.status_code} {response.text}",
    )
    assert isinstance(body, dict)
    return body


Body = TypeVar("Body", bound=BaseModel)


def valid(model: type[Body], data: object, expect: Expect, what: str) -> Body:
    """`data` as `model`, or `expect` fails naming the first fields that are wrong.

    Strict: a JSON answer's "0" is not the 0 the contract asks for, nor 1.0 its int.
    """
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        expect.fail(f"{what} to be a {model.__name__}", f"{problems} in {compact(data)}")
    raise AssertionError("unreachable: Expect.fail raises")


def expect_body(model: type[Body], response: httpx.Response, expect: Expect, what: str) -> Body:
    """The answer's body: a JSON object of `model`'s shape, or `expect` fails saying what came."""
    return valid(model, json_object(response, expect, what), expect, what)


def session_path(route: Route, session_id: str) -> str:
    """The route's path for this session; a route of no session is its own path."""
    return route.path(session_id=session_id) if route.params else route.path()


def _answer(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:400]}"


def _party(client: httpx.AsyncClient) -> str:
    return "the runtime" if getattr(client, "party", "gateway") == "runtime" else "the gateway"


async def create_session(client: httpx.AsyncClient) -> str:
    """A new session's id: the prerequisite R-CREATE-1 (or, through a gateway whose runtime is
    checked on its own, G-PROXY-1). A failure here blocks every check that needs a session."""
    run = state()
    run.require("R-CREATE-1")
    blamed = getattr(client, "create_requirement", "R-CREATE-1")
    run.require(blamed)
    response = await client.post(CREATE_SESSION.path())
    return created_id(response, blamed, f"{CREATE_SESSION} on {_party(client)}")


def created_id(response: httpx.Response, blamed: str, where: str) -> str:
    """The id a create answered, or the prerequisite failure of `blamed` saying what came."""
    run = state()
    if response.status_code not in (200, 201):
        raise run.prerequisite_failed(blamed, f"{where} to answer 200 or 201", _answer(response))
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise run.prerequisite_failed(blamed, f"{where} to answer a JSON object", _answer(response))
    session_id = body.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        keys = ", ".join(sorted(body)) or "none"
        raise run.prerequisite_failed(
            blamed,
            f"{where} to answer a new session with a string session_id",
            f"a body without one (its keys: {keys}): {response.text[:300]}",
        )
    return session_id


def user_message(text: str) -> dict[str, Any]:
    return {"type": "user_message", "content": text, "role": "user"}


async def stream_events(
    runtime: httpx.AsyncClient, session_id: str, message: dict[str, Any]
) -> tuple[httpx.Response, list[sse.SSEEvent]]:
    """One POST to the agent stream, as it came: for checks that judge the stream themselves."""
    response = await runtime.post(
        MESSAGE_STREAM.path(), json={"session_id": session_id, "message": message}
    )
    return response, sse.decode_events(response.text)


def message_data(events: list[sse.SSEEvent]) -> list[dict[str, Any]]:
    """The JSON objects a stream's message events carry; whether the others are well formed is
    R-STREAM-1's to judge."""
    objects = []
    for event in events:
        if event.event != "message":
            continue
        try:
            data = event.json()
        except ValueError:
            continue
        if isinstance(data, dict):
            objects.append(data)
    return objects


async def stream_turn(
    runtime: httpx.AsyncClient, session_id: str, message: dict[str, Any]
) -> list[sse.SSEEvent]:
    """A turn on the runtime's stream that ends (the prerequisite R-STREAM-1): its events."""
    run = state()
    run.require("R-STREAM-1")
    what = f"a stream for a {message.get('type')} ending in a done or error event"
    try:
        response, events = await stream_events(runtime, session_id, message)
    except httpx.TimeoutException:
        raise run.prerequisite_failed(
            "R-STREAM-1", what, f"no complete answer within {runtime.timeout.read:g} s"
        ) from None
    if response.status_code != 200:
        raise run.prerequisite_failed("R-STREAM-1", what, _answer(response))
    if not events or events[-1].event not in ("done", "error"):
        last = events[-1].event if events else "no event at all"
        raise run.prerequisite_failed("R-STREAM-1", what, f"a stream ending in {last}")
    return events


async def history_messages(
    client: httpx.AsyncClient, session_id: str, odd: bool = False
) -> list[dict[str, Any]]:
    """A session's messages (the prerequisite R-HIST-1).

    `odd`: the session holds content a check chose to be unusual. A history that then fails to
    read fails R-HIST-1 all the same, but blocks nothing else: other sessions still read.
    """
    run = state()
    run.require("R-HIST-1")
    where = f"GET /sessions/{session_id}/history on {_party(client)}"
    if odd:
        where += ", after unusual content"

    def failure(expected: str, received: str) -> CheckFailure:
        if odd:
            return CheckFailure("R-HIST-1", expected, received)
        return run.prerequisite_failed("R-HIST-1", expected, received)

    response = await client.get(HISTORY.path(session_id=session_id))
    if response.status_code != 200:
        raise failure(f"{where} to answer 200", _answer(response))
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise failure(f"{where} to answer a messages list of objects", _answer(response))
    return messages


async def error_frame_for(socket: Socket, what: str, expect: Expect) -> ServerFrame:
    """The next frame, which must be an error frame answering `what` (W-BAD-1, W-BAD-2)."""
    try:
        answer = await socket.recv_frame()
    except (SocketClosed, NoFrame) as exc:
        expect.fail(f"an error frame for {what}", str(exc))
    except FrameError as exc:
        expect.fail(f"an error frame for {what}", f"an invalid frame: {exc}")
    expect.that(answer.type == "error", f"an error frame for {what}", answer)
    return answer


async def turn(
    socket: Socket, message: dict[str, Any], expect: Expect, answered: str | None = None
) -> list[ServerFrame]:
    """Send a frame and read the turn it starts.

    A turn that does not end in time fails the prerequisite W-TURN-1 (and blocks every later
    check that chats); an invalid frame or a socket that closes mid-turn fails `expect`, the
    requirement the check is about. With `answered` (what the check expected, said as a report
    says it), a turn ending in an error frame fails `expect` too.
    """
    run = state()
    run.require("W-TURN-1")
    await socket.send_json(message)
    what = "a turn ending in a final assistant_message, a tool_call or an error"
    try:
        frames = await socket.turn()
    except TurnDidNotEnd as exc:
        raise run.prerequisite_failed("W-TURN-1", what, str(exc)) from None
    except FrameError as exc:
        expect.fail(f"{what}, in valid frames", f"an invalid frame: {exc}")
    except SocketClosed as closed:
        expect.fail(f"{what}, on a socket that stays open", str(closed))
    if answered is not None:
        expect.that(frames[-1].type != "error", answered, dumped(frames))
    return frames


async def next_message_works(socket: Socket, after: str, expect: Expect) -> None:
    """The connection stays usable: a plain message after `after` gets a turn without an error."""
    await turn(
        socket,
        user_message("still here"),
        expect,
        answered=f"the next valid message after {after} to work",
    )


def dumped(frames: list[ServerFrame]) -> list[dict[str, Any]]:
    """Frames as a report shows them."""
    return [frame.model_dump(mode="json", exclude_none=True) for frame in frames]


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
