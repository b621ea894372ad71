"""R-AUTH: the runtime's internal key."""

import statistics
import time
from collections.abc import Callable

import httpx
import pytest

from conformance.failures import Expect
from conformance.target_runner import TargetRunner
from conformance.targets import Capability
from conformance.transcript import Transcript
from contract.routes import (
    CREATE_SESSION,
    CURRENT_AGENT,
    HISTORY,
    LIST_AGENTS,
    LIST_SESSIONS,
    MESSAGE_STREAM,
)

from .support import create_session, json_object, stream_events, user_message

pytestmark = pytest.mark.asyncio

UNKNOWN = "session_0000000000000000"
GUARDED = [
    (LIST_SESSIONS.method, LIST_SESSIONS.path()),
    (CREATE_SESSION.method, CREATE_SESSION.path()),
    (HISTORY.method, HISTORY.path(session_id=UNKNOWN)),
    (LIST_AGENTS.method, LIST_AGENTS.path()),
    (CURRENT_AGENT.method, CURRENT_AGENT.path(session_id=UNKNOWN)),
    (MESSAGE_STREAM.method, MESSAGE_STREAM.path()),
    ("GET", "/no-such-path"),
]


def _internal_key(target: TargetRunner) -> str:
    assert target.endpoints is not None
    key = target.endpoints.internal_key
    if key is None:
        pytest.skip("the target names no internal key: its runtime is open")
    return key


@pytest.mark.req("R-AUTH-1")
@pytest.mark.parametrize("offered", [None, "wrong"], ids=["missing-key", "wrong-key"])
async def test_runtime_refuses_requests_without_the_key(
    runtime: httpx.AsyncClient, sessionlab_target: TargetRunner, offered: str | None
) -> None:
    """R-AUTH-1: "Every path except /health, /docs, /openapi.json, /redoc answers 401 with JSON
    {"detail": "unauthorized"} (any JSON object is accepted) when X-Internal-Auth is missing or
    wrong". Each route of section 3, and a path no runtime has; the wrong key is the right one with
    more after it."""
    key = _internal_key(sessionlab_target)
    expect = Expect("R-AUTH-1")
    headers: dict[str, str] = {}
    if offered is None:
        runtime.headers.pop("X-Internal-Auth", None)
    else:
        headers = {"X-Internal-Auth": key + offered}
    for method, path in GUARDED:
        body = {"session_id": "s", "message": user_message("x")} if method == "POST" else None
        response = await runtime.request(method, path, headers=headers, json=body)
        expect.that(
            response.status_code == 401,
            f"401 for {method} {path} with a {'wrong' if offered else 'missing'} key",
            f"{response.status_code} {response.text}",
            reproduce=f"curl -i -X {method} {runtime.base_url}{path}",
        )
        json_object(response, expect, f"the 401 of {method} {path}")


async def _session_count(runtime: httpx.AsyncClient) -> int | None:
    """How many sessions the runtime lists, or None when its list does not say (R-LIST-1's)."""
    try:
        body = (await runtime.get(LIST_SESSIONS.path())).json()
    except (ValueError, UnicodeDecodeError):
        return None
    total = body.get("total") if isinstance(body, dict) else None
    return total if isinstance(total, int) else None


@pytest.mark.req("R-AUTH-1")
async def test_refused_create_does_no_work(
    runtime: httpx.AsyncClient, sessionlab_target: TargetRunner, partial: Callable[[str], None]
) -> None:
    """R-AUTH-1: "... answers 401 ... when X-Internal-Auth is missing or wrong, and does no
    work." The work looked for: a refused create must not make a session."""
    key = _internal_key(sessionlab_target)
    expect = Expect("R-AUTH-1")
    before = await _session_count(runtime)
    refused = await runtime.post(CREATE_SESSION.path(), headers={"X-Internal-Auth": key + "-not"})
    after = await _session_count(runtime)
    expect.that(
        refused.status_code == 401, "401 for a create with a wrong key", refused.status_code
    )
    if before is None or after is None:
        partial(
            "'does no work' was not checked: GET /sessions gave no integer total to count "
            "sessions by (see R-LIST-1)"
        )
        return
    expect.that(after == before, f"no new session after a refused create ({before})", after)


async def _median_refusal(client: httpx.AsyncClient, key: str, rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        await client.get(LIST_AGENTS.path(), headers={"X-Internal-Auth": key})
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


@pytest.mark.req("R-AUTH-2")
async def test_key_comparison_time_does_not_depend_on_the_matching_prefix(
    runtime: httpx.AsyncClient, sessionlab_target: TargetRunner, deep: bool, transcript: Transcript
) -> None:
    """R-AUTH-2 (SHOULD): "The key comparison is constant-time."

    A SHOULD measured by timing, so a failure is a warning: refusals of wrong keys of the key's
    length, differing from it at the first or at the last character, timed in interleaved rounds. A
    refusal of the late difference may take at most 25% and 2 ms (per median) longer.
    """
    key = _internal_key(sessionlab_target)
    expect = Expect("R-AUTH-2")
    rounds = 200 if deep else 60
    # Same length, differing at the first vs. the last character: an early-exit comparison
    # takes measurably longer on the second. Interleaved so machine noise hits both alike.
    first = ("x" if key[0] != "x" else "y") + key[1:]
    last = key[:-1] + ("x" if key[-1] != "x" else "y")
    early = late = 0.0
    for _ in range(3):
        early += await _median_refusal(runtime, first, rounds // 3)
        late += await _median_refusal(runtime, last, rounds // 3)
    transcript.note(
        f"median refusal: differs at first char {early / 3:.6f}s, at last {late / 3:.6f}s"
    )
    # A constant-time compare shows no systematic gap; allow noise of 25% and 2 ms.
    expect.that(
        late <= early * 1.25 + 0.006,
        "refusals to take the same time wherever the wrong key differs",
        f"{late / 3 * 1000:.2f} ms when only the last character differs vs. "
        f"{early / 3 * 1000:.2f} ms when the first does",
    )


@pytest.mark.req("R-AUTH-3")
async def test_key_never_appears_in_bodies_or_logs(
    runtime: httpx.AsyncClient,
    sessionlab_target: TargetRunner,
    transcript: Transcript,
    partial: Callable[[str], None],
) -> None:
    """R-AUTH-3: "The key never appears in a response body or in the runtime's logs, at any log
    level."

    Bodies: every runtime answer of the whole run is scanned by the probes, and a leak found in any
    check fails this requirement; here the answers most tempted to show it (refusals, a stream).
    Logs: the lines the runtime wrote while these requests ran, where the target offers them.
    """
    _internal_key(sessionlab_target)
    logs = (
        sessionlab_target.logs("runtime")
        if sessionlab_target.supports("runtime", Capability.LOGS)
        else None
    )
    start = len(logs.lines()) if logs else 0
    session_id = await create_session(runtime)
    await runtime.get(HISTORY.path(session_id=session_id))
    await runtime.get(LIST_SESSIONS.path())
    await runtime.get(LIST_SESSIONS.path(), headers={"X-Internal-Auth": "wrong"})
    await runtime.get(LIST_SESSIONS.path(), headers={"X-Internal-Auth": ""})
    await stream_events(runtime, session_id, user_message("hi"))
    if logs is None:
        partial(
            "the runtime's logs were not checked: the target offers none (use a process or "
            "container target, or name a log file in the target file)"
        )
        return
    key = _internal_key(sessionlab_target)
    lines = [line for line in logs.lines()[start:] if key in line]
    Expect("R-AUTH-3").that(
        not lines,
        "no log line carrying the internal key",
        transcript.redact(lines[0]) if lines else "",
    )
