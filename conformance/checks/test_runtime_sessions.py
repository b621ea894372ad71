"""R-HEALTH, R-CREATE, R-LIST: the runtime's sessions (through the gateway when no runtime URL)."""

import asyncio
import re
from typing import Any

import httpx
import pytest

from conformance.failures import Expect
from conformance.plugin import deadline
from conformance.target_runner import TargetRunner
from conformance.targets import Capability
from contract.bodies import CreatedSession, Health
from contract.ids import SERVER_ID_PATTERN
from contract.routes import CREATE_SESSION, HEALTH, HISTORY, LIST_SESSIONS

from .support import create_session, created_id, expect_body, json_object

pytestmark = pytest.mark.asyncio

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}")


@pytest.mark.req("R-HEALTH-1")
async def test_runtime_health_answers_without_a_key(runtime: httpx.AsyncClient) -> None:
    """R-HEALTH-1: "GET /health -> 200 {"status": "healthy", "service": str, "version": str}, no key
    needed." Asked without X-Internal-Auth."""
    expect = Expect("R-HEALTH-1")
    runtime.headers.pop("X-Internal-Auth", None)
    response = await runtime.get(HEALTH.path())
    expect.that(response.status_code == 200, "200", f"{response.status_code} {response.text}")
    expect_body(Health, response, expect, HEALTH.template)


@pytest.mark.req("R-CREATE-1")
@pytest.mark.parametrize("body", [None, b"{}"], ids=["no-body", "empty-object"])
async def test_create_answers_a_new_session(
    sessions_api: httpx.AsyncClient, body: bytes | None
) -> None:
    """R-CREATE-1: "POST /sessions with no body (and with {}) -> 200 or 201 with {"session_id":
    str, "message_count": 0, "current_agent": "orchestrator", "created_at": timestamp}."

    The bodyless create is the prerequisite every session-making check stands on: its failure
    blocks them. A create with `{}` failing fails this requirement alone.
    """
    expect = Expect("R-CREATE-1")
    headers = {"Content-Type": "application/json"} if body else {}
    response = await sessions_api.post(CREATE_SESSION.path(), content=body, headers=headers)
    if body is None:
        created_id(response, "R-CREATE-1", "POST /sessions with no body")
    expect.that(
        response.status_code in (200, 201), "200 or 201", f"{response.status_code} {response.text}"
    )
    created = expect_body(CreatedSession, response, expect, "POST /sessions")
    expect.that(
        bool(TIMESTAMP.match(created.created_at)),
        "an ISO 8601 created_at",
        created.model_dump(mode="json"),
    )


@pytest.mark.req("R-CREATE-2")
async def test_created_ids_have_the_server_format(sessions_api: httpx.AsyncClient) -> None:
    """R-CREATE-2 (SHOULD): "session_id matches ^session_[0-9a-f]{16}$." Five creates."""
    expect = Expect("R-CREATE-2")
    for _ in range(5):
        session_id = await create_session(sessions_api)
        expect.that(
            SERVER_ID_PATTERN.fullmatch(session_id) is not None,
            "an id matching ^session_[0-9a-f]{16}$",
            session_id,
        )


@pytest.mark.req("R-CREATE-3")
async def test_a_thousand_creates_give_a_thousand_ids(
    sessions_api: httpx.AsyncClient, deep: bool
) -> None:
    """R-CREATE-3: "Ids are unique: 1,000 creates (including concurrent ones) give 1,000 distinct
    ids." Sixteen at a time (5,000 with --deep). Judged on progress, not speed: it fails when no
    create answers for 15 s (docs/decisions.md)."""
    expect = Expect("R-CREATE-3")
    count = 5000 if deep else 1000
    gate = asyncio.Semaphore(16)
    # Each create is still recorded, but a thousand bodies in a failure transcript help nobody.
    sessions_api.event_hooks = {"request": [], "response": []}

    async def create() -> str:
        async with gate:
            response = await sessions_api.post(CREATE_SESSION.path())
        answered.append(response.status_code)
        return created_id(response, "R-CREATE-3", f"create {len(answered)} of {count}")

    answered: list[int] = []
    # Judged on progress, not on speed: a target that rate-limits may take long, but answers.
    stall = deadline(15)
    pending = {asyncio.ensure_future(create()) for _ in range(count)}
    made: list[str] = []
    try:
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=stall, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                expect.fail(
                    f"{count} creates answered, each within {stall:g} s of the one before",
                    f"{len(answered)} answered, then none for {stall:g} s",
                )
            made.extend(task.result() for task in done)
    finally:
        for task in pending:
            task.cancel()
    duplicates = len(made) - len(set(made))
    expect.that(duplicates == 0, f"{count} distinct ids", f"{duplicates} duplicates")


@pytest.mark.req("R-CREATE-4")
async def test_created_session_survives_a_runtime_restart(
    sessionlab_target: TargetRunner, gateway: httpx.AsyncClient, sessions_api: httpx.AsyncClient
) -> None:
    """R-CREATE-4: "The session is durable before the response: after a runtime restart it is still
    listed and its history is 200." The restart follows the create's answer at once."""
    if not sessionlab_target.supports("runtime", Capability.STOP):
        pytest.skip("the target offers no control of its runtime (stop/start)")
    expect = Expect("R-CREATE-4")
    session_id = await create_session(sessions_api)
    await sessionlab_target.restart_service("runtime")
    listed = json_object(await sessions_api.get(LIST_SESSIONS.path()), expect, "GET /sessions")
    sessions = listed.get("sessions")
    ids, difference = _listed_ids(sessions if isinstance(sessions, list) else [])
    if difference and session_id not in ids:
        # A list that names sessions some other way cannot show this one: R-LIST-1's failure.
        Expect("R-LIST-1").fail("listed sessions named by session_id", difference.lstrip("; "))
    expect.that(
        session_id in ids,
        f"{session_id} listed after the restart",
        f"{len(ids)} other sessions listed{difference}",
    )
    history = await sessions_api.get(HISTORY.path(session_id=session_id))
    expect.that(
        history.status_code == 200, "its history 200 after the restart", history.status_code
    )


@pytest.mark.req("R-CREATE-5")
async def test_runtime_logs_the_creation(
    sessionlab_target: TargetRunner, sessions_api: httpx.AsyncClient
) -> None:
    """R-CREATE-5 (SHOULD): "The runtime logs Creating new session before and Created new session:
    <id> after creating it." In the lines written since the create, within 5 s of it."""
    if not sessionlab_target.supports("runtime", Capability.LOGS):
        pytest.skip("the target offers no runtime logs")
    expect = Expect("R-CREATE-5")
    logs = sessionlab_target.logs("runtime")
    since = len(logs.lines())
    session_id = await create_session(sessions_api)
    try:
        async with asyncio.timeout(deadline(5)):
            created = await logs.wait_for(f"Created new session: {re.escape(session_id)}", since)
    except TimeoutError:
        expect.fail(f"a log line 'Created new session: {session_id}'", "none within 5 s")
    lines = logs.lines()[since:]
    creating = [i for i, line in enumerate(lines) if "Creating new session" in line]
    expect.that(
        bool(creating) and creating[0] < lines.index(created),
        "'Creating new session' logged before the 'Created' line",
        lines[:10],
    )


def _listed_ids(sessions: list[Any]) -> tuple[set[str], str]:
    """The ids a list names, and how its entries differ from SessionInfo when they name none."""
    ids = {i["session_id"] for i in sessions if isinstance(i, dict) and "session_id" in i}
    keys = sorted({key for info in sessions if isinstance(info, dict) for key in info})
    without = sum(1 for info in sessions if not isinstance(info, dict) or "session_id" not in info)
    note = f"; {without} of {len(sessions)} entries carry no session_id (their keys: "
    return ids, (note + ", ".join(keys) + ")") if without else ""


@pytest.mark.req("R-LIST-1")
async def test_list_shows_every_created_session(sessions_api: httpx.AsyncClient) -> None:
    """R-LIST-1: "GET /sessions -> 200 {"sessions": [SessionInfo], "total": int}; SessionInfo =
    {"session_id", "message_count": int, "last_activity": timestamp, "current_agent": str or
    null}; every created session appears; total equals the number of sessions listed"."""
    expect = Expect("R-LIST-1")
    made = {await create_session(sessions_api) for _ in range(3)}
    response = await sessions_api.get(LIST_SESSIONS.path())
    expect.that(response.status_code == 200, "200", f"{response.status_code} {response.text}")
    body = json_object(response, expect, "GET /sessions")
    sessions = body.get("sessions")
    expect.that(isinstance(sessions, list), "a sessions list", body)
    assert isinstance(sessions, list)
    expect.that(body.get("total") == len(sessions), f"total == {len(sessions)}", body.get("total"))
    listed, difference = _listed_ids(sessions)
    missing = sorted(made - listed)
    expect.that(
        not missing,
        "every created session listed by its session_id",
        f"{len(missing)} of {len(made)} not found: {', '.join(missing)}{difference}",
    )
    for info in sessions:
        wrong = _session_info_problems(info)
        expect.that(not wrong, "each entry a SessionInfo", f"{'; '.join(wrong)}: {info}")


def _session_info_problems(info: object) -> list[str]:
    if not isinstance(info, dict):
        return ["not an object"]
    problems = []
    if not isinstance(info.get("session_id"), str):
        problems.append("no string session_id")
    if not isinstance(info.get("message_count"), int):
        problems.append("no integer message_count")
    if not isinstance(info.get("last_activity"), str):
        problems.append("no last_activity timestamp")
    agent = info.get("current_agent")
    if agent is not None and not isinstance(agent, str):
        problems.append("current_agent neither a string nor null")
    return problems
