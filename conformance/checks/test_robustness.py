"""R-ROB-, G-ROB-, W-ROB-: hostile input and load.

Each check runs two clients: a hostile one (deep JSON, half-sent request heads, binary frames,
text that is not UTF-8, huge frames) and an ordinary one, and fails when the ordinary one is hurt
or the hostile input is answered as the contract forbids. Sizes and counts are bounded so that a
core run takes a few seconds per check; `--deep` sends more at once.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from conformance.failures import Expect
from conformance.plugin import SocketOpener, deadline
from conformance.probes import NoFrame, Socket, SocketClosed, TurnDidNotEnd, describe_close
from conformance.target_runner import TargetRunner
from conformance.transcript import Transcript
from contract.frames import AssistantMessageFrame, FrameError, ServerFrame
from contract.routes import CREATE_SESSION, HEALTH, MESSAGE_STREAM, Route

from .support import create_session, error_frame_for, next_message_works, turn, user_message

pytestmark = pytest.mark.asyncio


DEPTH = 100_000
# What the contract lets an ordinary client wait while a hostile one is at work.
ORDINARY_SECONDS = 5.0
HALF_HEADS = 50
DEEP_HALF_HEADS = 400
HEAD_DEADLINE = 10.0
MIB = 1024 * 1024
HOSTILE_FRAME_BYTES = 15 * MIB
SIZE_CEILING = 16 * MIB


def deep_array() -> bytes:
    return b"[" * DEPTH + b"]" * DEPTH


def deep_frame() -> str:
    nested = "[" * DEPTH + "]" * DEPTH
    return f'{{"type": "user_message", "role": "user", "content": {nested}}}'


def _shown(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:200]}"


async def ordinary_health(base_url: str, transcript: Transcript, who: str) -> str | None:
    """None when `GET /health` of a client of its own answers 200 within the contract's 5 s;
    else what came instead."""
    seconds = deadline(ORDINARY_SECONDS)
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=seconds, trust_env=False) as own:
            response = await own.get(HEALTH.path())
    except httpx.HTTPError as exc:
        took = time.monotonic() - started
        transcript.note(f"ordinary client: GET /health on {who} failed after {took:.1f} s")
        return f"no answer to GET /health within {seconds:g} s ({type(exc).__name__}: {exc})"
    took = time.monotonic() - started
    transcript.note(f"ordinary client: GET /health on {who} answered {response.status_code}")
    if response.status_code != 200:
        return f"GET /health answered {_shown(response)}"
    if took > seconds:
        return f"GET /health took {took:.1f} s"
    return None


async def hostile_and_ordinary(
    hostile: Awaitable[list[str]], *ordinary: Callable[[], Awaitable[str | None]]
) -> tuple[list[str], str | None]:
    """Run the hostile client and, once it is under way, each ordinary one side by side, again
    and again until the hostile one is done: a harm that comes late in the attack (a big frame
    still arriving) is seen as well as one at its start, and one ordinary client's wait (a turn)
    leaves no gap in another's watch (GET /health)."""
    hostile_task = asyncio.ensure_future(hostile)
    await asyncio.sleep(0.05)

    async def watch(client: Callable[[], Awaitable[str | None]]) -> str | None:
        while True:
            hurt = await client()
            if hurt is not None or hostile_task.done():
                return hurt

    hurts = await asyncio.gather(*(watch(client) for client in ordinary))
    return await hostile_task, next((hurt for hurt in hurts if hurt is not None), None)


async def _deep_posts(
    base_url: str,
    headers: dict[str, str],
    route: Route,
    bodies: list[bytes],
    transcript: Transcript,
) -> list[httpx.Response | str]:
    """POST each body at once. A client of its own: the transcript notes what went, since a
    body 100,000 levels deep is more than its JSON display can take."""

    async def post(own: httpx.AsyncClient, body: bytes) -> httpx.Response | str:
        try:
            return await own.request(
                route.method,
                route.path(),
                content=body,
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            return f"no answer ({type(exc).__name__}: {exc})"

    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=deadline(15), trust_env=False
    ) as own:
        answers = list(await asyncio.gather(*(post(own, body) for body in bodies)))
    for answer in answers:
        transcript.note(f"{route}, a body of {DEPTH:,} nested levels: {_said(answer)}")
    return answers


def _is_4xx(answer: httpx.Response | str) -> bool:
    return isinstance(answer, httpx.Response) and 400 <= answer.status_code < 500


def _said(answer: httpx.Response | str) -> str:
    return answer if isinstance(answer, str) else _shown(answer)


def _copies(deep: bool) -> int:
    return 16 if deep else 4


@pytest.mark.req("R-ROB-1")
async def test_a_deeply_nested_body_gets_a_4xx_from_the_runtime(
    runtime: httpx.AsyncClient,
    sessionlab_target: TargetRunner,
    transcript: Transcript,
    deep: bool,
) -> None:
    """R-ROB-1: "A request body of JSON nested 100,000 levels deep, to POST /sessions or POST
    /agent/message/stream, gets a 4xx answer, never a 5xx; meanwhile GET /health of another
    client answers within 5 s"."""
    expect = Expect("R-ROB-1")
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    assert endpoints.runtime_url is not None
    runtime_url, headers = endpoints.runtime_url, endpoints.runtime_headers()
    session_id = await create_session(runtime)
    nested = deep_array().decode()
    body = f'{{"session_id": {json.dumps(session_id)}, "message": {{"type": "user_message", '
    body += f'"role": "user", "content": {nested}}}}}'
    copies = _copies(deep)

    async def hostile() -> list[str]:
        creates = await _deep_posts(
            runtime_url, headers, CREATE_SESSION, [deep_array()] * copies, transcript
        )
        streams = await _deep_posts(
            runtime_url,
            headers,
            MESSAGE_STREAM,
            [body.encode()] * copies,
            transcript,
        )
        problems = [f"{CREATE_SESSION}: {_said(a)}" for a in creates if not _is_4xx(a)]
        problems += [f"{MESSAGE_STREAM}: {_said(a)}" for a in streams if not _is_4xx(a)]
        return problems

    problems, hurt = await hostile_and_ordinary(
        hostile(), lambda: ordinary_health(runtime_url, transcript, "the runtime")
    )
    expect.that(
        not problems,
        f"a 4xx for each body nested {DEPTH:,} levels deep",
        problems[:3],
    )
    expect.that(hurt is None, "GET /health of another client answered within 5 s meanwhile", hurt)


@pytest.mark.req("G-ROB-1")
async def test_a_deeply_nested_body_gets_a_4xx_from_the_gateway(
    sessionlab_target: TargetRunner,
    transcript: Transcript,
    deep: bool,
    partial: Callable[[str], None],
) -> None:
    """G-ROB-1: "A request body of JSON nested 100,000 levels deep to the gateway's POST
    /sessions gets a 4xx answer, never a 5xx; meanwhile GET /health of another client answers
    within 5 s". A 5xx the runtime itself answers to the same body is R-ROB-1's failure, which the
    gateway passes on rightly (G-ERR-1)."""
    expect = Expect("G-ROB-1")
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    gateway_url, client = endpoints.gateway_url, endpoints.client_headers()

    async def hostile() -> list[str]:
        answers = await _deep_posts(
            gateway_url, client, CREATE_SESSION, [deep_array()] * _copies(deep), transcript
        )
        return [_said(answer) for answer in answers if not _is_4xx(answer)]

    problems, hurt = await hostile_and_ordinary(
        hostile(), lambda: ordinary_health(gateway_url, transcript, "the gateway")
    )
    expect.that(hurt is None, "GET /health of another client answered within 5 s meanwhile", hurt)
    if problems and all(p[:1] == "5" for p in problems) and endpoints.runtime_url:
        (answer,) = await _deep_posts(
            endpoints.runtime_url,
            endpoints.runtime_headers(),
            CREATE_SESSION,
            [deep_array()],
            transcript,
        )
        if isinstance(answer, httpx.Response) and answer.status_code >= 500:
            partial(
                f"the runtime itself answered {answer.status_code} to the same body "
                "(R-ROB-1's failure), which the gateway passed on"
            )
            return
    expect.that(not problems, f"a 4xx for each body nested {DEPTH:,} levels deep", problems[:3])


def _host_port(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "127.0.0.1", parts.port or default, parts.path.rstrip("/")


async def _half_head(host: str, port: int, base: str) -> asyncio.StreamWriter:
    """A connection that sends the start of a request head and never finishes it."""
    _, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {base}{HEALTH.path()} HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
    await writer.drain()
    return writer


def _close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()


@pytest.mark.req("G-ROB-2")
async def test_half_sent_request_heads_never_starve_an_ordinary_client(
    gateway: httpx.AsyncClient,
    sessionlab_target: TargetRunner,
    transcript: Transcript,
    deep: bool,
    partial: Callable[[str], None],
) -> None:
    """G-ROB-2: "While other connections hold request heads that never finish (50 of them; 400
    under --deep), an ordinary client's GET /health and POST /sessions answer within 5 s"."""
    expect = Expect("G-ROB-2")
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    host, port, base = _host_port(endpoints.gateway_url)
    wanted = DEEP_HALF_HEADS if deep else HALF_HEADS
    writers: list[asyncio.StreamWriter] = []
    try:
        for _ in range(wanted):
            try:
                writers.append(await _half_head(host, port, base))
            except OSError as exc:
                # The gateway refusing more connections is its right; the check goes on.
                transcript.note(f"connection {len(writers) + 1} of {wanted} not opened: {exc}")
                break
        transcript.note(f"{len(writers)} connections hold half-sent request heads")
        hurt = await ordinary_health(endpoints.gateway_url, transcript, "the gateway")
        expect.that(
            hurt is None,
            f"GET /health answered within 5 s while {len(writers)} request heads are half-sent",
            hurt,
        )
        started = time.monotonic()
        try:
            async with asyncio.timeout(deadline(ORDINARY_SECONDS)):
                await create_session(gateway)
        except TimeoutError:
            expect.fail(
                f"POST /sessions answered within 5 s while {len(writers)} heads are half-sent",
                f"no answer within {time.monotonic() - started:.1f} s",
            )
    finally:
        _close_all(writers)
    if len(writers) < wanted:
        partial(f"only {len(writers)} of {wanted} slow connections could be opened")


async def _closed_by_peer(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


@pytest.mark.req("G-ROB-3")
async def test_a_request_head_that_never_finishes_is_dropped(
    sessionlab_target: TargetRunner, transcript: Transcript
) -> None:
    """G-ROB-3 (SHOULD): "The gateway closes a connection whose request head has not fully
    arrived 10 s after it opened"."""
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    host, port, base = _host_port(endpoints.gateway_url)
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    try:
        writer.write(f"GET {base}{HEALTH.path()} HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
        await writer.drain()
        transcript.note("sent half a request head, and nothing more")
        seconds = deadline(HEAD_DEADLINE) + 1
        closed = await _closed_by_peer(reader, seconds)
    finally:
        writer.close()
    took = time.monotonic() - started
    transcript.note(f"closed by the gateway: {closed}, after {took:.1f} s")
    Expect("G-ROB-3").that(
        closed,
        "the connection closed by the gateway within 10 s of its half-sent request head",
        f"still open after {took:.1f} s",
    )


@pytest.mark.req("W-ROB-1")
async def test_a_deeply_nested_frame_gets_an_error_frame(
    gateway: httpx.AsyncClient, open_ws: SocketOpener
) -> None:
    """W-ROB-1: "A text frame of JSON nested 100,000 levels deep gets an error frame; the
    connection stays open and the next valid message works"."""
    expect = Expect("W-ROB-1")
    session_id = await create_session(gateway)
    what = f"a frame nested {DEPTH:,} levels deep"
    async with open_ws(session_id) as socket:
        await socket.send_text(deep_frame())
        await error_frame_for(socket, what, expect)
        await next_message_works(socket, what, expect)


HostileSend = Callable[[Socket], Awaitable[None]]


async def _binary(socket: Socket) -> None:
    await socket.send_bytes(b"\x00" * HOSTILE_FRAME_BYTES)


async def _not_utf8(socket: Socket) -> None:
    socket.transcript.record("ws-send", "<text frame of 6 bytes that are not UTF-8>")
    await socket.connection.send(b'{"\xff\xfe":', text=True)


async def _huge_text(socket: Socket) -> None:
    content = "x" * HOSTILE_FRAME_BYTES
    await socket.send_text(json.dumps(user_message(content)))


HOSTILE_SENDS: tuple[tuple[str, HostileSend], ...] = (
    ("a binary frame of 15 MiB", _binary),
    ("a text frame that is not UTF-8", _not_utf8),
    ("a text frame of 15 MiB", _huge_text),
)


async def _hostile_socket(open_ws: SocketOpener, session_id: str, send: HostileSend) -> str:
    """Send one hostile frame and read what comes within a while: only for the transcript."""
    with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
        async with open_ws(session_id) as socket:
            await send(socket)
            try:
                await socket.recv_text(timeout=deadline(2))
            except SocketClosed as closed:
                return describe_close(closed)
            except NoFrame:
                return "silence"
            return "a frame"
    return "closed while sending"


def _reply(frames: list[ServerFrame]) -> str:
    return "".join(f.text for f in frames if isinstance(f, AssistantMessageFrame))


@pytest.mark.req("W-ROB-2")
async def test_a_hostile_socket_never_hurts_another(
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    sessionlab_target: TargetRunner,
    transcript: Transcript,
    deep: bool,
    run_id: str,
) -> None:
    """W-ROB-2: "While one socket sends binary frames, text frames that are not UTF-8 and frames
    of 15 MiB, a turn on another socket of the gateway completes and GET /health answers within 5
    s"."""
    expect = Expect("W-ROB-2")
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    hostile_session = await create_session(gateway)
    ordinary_session = await create_session(gateway)
    rounds = 4 if deep else 1
    async with open_ws(ordinary_session) as ordinary:
        # A turn before the attack stands for the prerequisite W-TURN-1: once it has ended in
        # time, a turn that does not end during the attack is this requirement's failure.
        await turn(ordinary, user_message(f"before {run_id}"), expect)

        async def hostile() -> list[str]:
            sends = [send for _ in range(rounds) for _, send in HOSTILE_SENDS]
            outcomes = await asyncio.gather(
                *(_hostile_socket(open_ws, hostile_session, send) for send in sends)
            )
            transcript.note(f"the hostile sockets saw: {', '.join(outcomes)}")
            return []

        async def ordinary_turn() -> str | None:
            await ordinary.send_json(user_message(f"ordinary {run_id}"))
            try:
                frames = await ordinary.turn()
            except (TurnDidNotEnd, FrameError, SocketClosed) as exc:
                return f"the ordinary turn did not complete: {exc}"
            if frames[-1].type == "error":
                return f"the ordinary turn ended in an error: {frames[-1].model_dump()}"
            transcript.note(f"the ordinary turn answered {_reply(frames)[:80]!r}")
            return None

        _, hurt = await hostile_and_ordinary(
            hostile(),
            lambda: ordinary_health(endpoints.gateway_url, transcript, "the gateway"),
            ordinary_turn,
        )
    expect.that(
        hurt is None,
        "a turn on another socket and GET /health unhurt while one socket sends hostile frames",
        hurt,
    )


@pytest.mark.req("W-ROB-3")
async def test_one_size_limit_refuses_frames_with_1009_and_bodies_with_413(
    gateway: httpx.AsyncClient, open_ws: SocketOpener
) -> None:
    """W-ROB-3 (SHOULD): "The gateway documents one size limit, at most 16 MiB, for REST bodies
    and WebSocket frames: a frame over it is refused with close code 1009, a body over it with
    413". A frame and a body of 16 MiB and one byte are over any limit it may document."""
    expect = Expect("W-ROB-3")
    session_id = await create_session(gateway)
    over = SIZE_CEILING + 1
    padding = over - len(json.dumps(user_message("")))
    frame = json.dumps(user_message("x" * padding))
    outcome = "accepted, and the socket stays open"
    code: int | None = None
    async with open_ws(session_id) as socket:
        try:
            await socket.send_text(frame)
            answer = await socket.recv_text(timeout=deadline(5))
            outcome = f"a frame instead of a close: {answer[:200]}"
        except SocketClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            outcome = describe_close(closed)
        except NoFrame:
            pass
    expect.that(code == 1009, f"a frame of {over:,} bytes refused with close 1009", outcome)
    try:
        response = await gateway.post(
            CREATE_SESSION.path(), content=b" " * over, headers={"Content-Type": "application/json"}
        )
    except httpx.HTTPError as exc:
        expect.fail(f"413 for a body of {over:,} bytes", f"no answer ({type(exc).__name__})")
    expect.that(response.status_code == 413, f"413 for a body of {over:,} bytes", _shown(response))
