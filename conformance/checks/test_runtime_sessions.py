"""R-HEALTH, R-CREATE, R-LIST: the runtime's sessions (through the gateway when no runtime URL)."""

import asyncio
import re

import httpx
import pytest

from conformance.contract.ids import SERVER_ID_PATTERN
from conformance.failures import Expect
from conformance.plugin import deadline
from conformance.target_runner import TargetRunner
from conformance.targets import Capability

from .support import create_session, json_object

pytestmark = pytest.mark.asyncio

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}")


@pytest.mark.req("R-HEALTH-1")
async def test_runtime_health_answers_without_a_key(runtime: httpx.AsyncClient) -> None:
    expect = Expect("R-HEALTH-1")
    runtime.headers.pop("X-Internal-Auth", None)
    response = await runtime.get("/health")
    expect.that(response.status_code == 200, "200", f"{response.status_code} {response.text}")
    body = json_object(response, expect, "/health")
    expect.that(body.get("status") == "healthy", 'status "healthy"', body)
    expect.that(
        isinstance(body.get("service"), str) and isinstance(body.get("version"), str),
        "string service and version",
        body,
    )


@pytest.mark.req("R-CREATE-1")
@pytest.mark.parametrize("body", [None, b"{}"], ids=["no-body", "empty-object"])
async def test_create_answers_a_new_session(
    sessions_api: httpx.AsyncClient, body: bytes | None
) -> None:
    expect = Expect("R-CREATE-1")
    headers = {"Content-Type": "application/json"} if body else {}
    response = await sessions_api.post("/sessions", content=body, headers=headers)
    expect.that(
        response.status_code in (200, 201), "200 or 201", f"{response.status_code} {response.text}"
    )
    created = json_object(response, expect, "POST /sessions")
    expect.that(isinstance(created.get("session_id"), str), "a string session_id", created)
    expect.that(created.get("message_count") == 0, "message_count 0", created)
    expect.that(
        created.get("current_agent") == "orchestrator", 'current_agent "orchestrator"', created
    )
    stamp = created.get("created_at")
    expect.that(
        isinstance(stamp, str) and bool(TIMESTAMP.match(stamp)), "an ISO 8601 created_at", created
    )


@pytest.mark.req("R-CREATE-2")
async def test_created_ids_have_the_server_format(sessions_api: httpx.AsyncClient) -> None:
    expect = Expect("R-CREATE-2")
    for _ in range(5):
        session_id = await create_session(sessions_api, expect)
        expect.that(
            SERVER_ID_PATTERN.fullmatch(session_id) is not None,
            "an id matching ^session_[0-9a-f]{16}$",
            session_id,
        )


@pytest.mark.req("R-CREATE-3")
async def test_a_thousand_creates_give_a_thousand_ids(
    sessions_api: httpx.AsyncClient, deep: bool
) -> None:
    expect = Expect("R-CREATE-3")
    count = 5000 if deep else 1000
    gate = asyncio.Semaphore(16)
    # Each create is still recorded, but a thousand bodies in a failure transcript help nobody.
    sessions_api.event_hooks = {"request": [], "response": []}

    async def create() -> str:
        async with gate:
            response = await sessions_api.post("/sessions")
        expect.that(
            response.status_code in (200, 201), "every create to succeed", response.status_code
        )
        return str(response.json()["session_id"])

    async with asyncio.timeout(deadline(count / 20)):
        made = await asyncio.gather(*(create() for _ in range(count)))
    duplicates = len(made) - len(set(made))
    expect.that(duplicates == 0, f"{count} distinct ids", f"{duplicates} duplicates")


@pytest.mark.req("R-CREATE-4")
async def test_created_session_survives_a_runtime_restart(
    sessionlab_target: TargetRunner, gateway: httpx.AsyncClient, sessions_api: httpx.AsyncClient
) -> None:
    if not sessionlab_target.supports("runtime", Capability.STOP):
        pytest.skip("the target offers no control of its runtime (stop/start)")
    expect = Expect("R-CREATE-4")
    session_id = await create_session(sessions_api, expect)
    await sessionlab_target.restart_service("runtime")
    listed = json_object(await sessions_api.get("/sessions"), expect, "GET /sessions")
    ids = {info.get("session_id") for info in listed.get("sessions", [])}
    expect.that(session_id in ids, f"{session_id} listed after the restart", f"{len(ids)} others")
    history = await sessions_api.get(f"/sessions/{session_id}/history")
    expect.that(
        history.status_code == 200, "its history 200 after the restart", history.status_code
    )


@pytest.mark.req("R-CREATE-5")
async def test_runtime_logs_the_creation(
    sessionlab_target: TargetRunner, sessions_api: httpx.AsyncClient
) -> None:
    if not sessionlab_target.supports("runtime", Capability.LOGS):
        pytest.skip("the target offers no runtime logs")
    expect = Expect("R-CREATE-5")
    logs = sessionlab_target.logs("runtime")
    since = len(logs.lines())
    session_id = await create_session(sessions_api, expect)
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


@pytest.mark.req("R-LIST-1")
async def test_list_shows_every_created_session(sessions_api: httpx.AsyncClient) -> None:
    expect = Expect("R-LIST-1")
    made = {await create_session(sessions_api, expect) for _ in range(3)}
    response = await sessions_api.get("/sessions")
    expect.that(response.status_code == 200, "200", f"{response.status_code} {response.text}")
    body = json_object(response, expect, "GET /sessions")
    sessions = body.get("sessions")
    expect.that(isinstance(sessions, list), "a sessions list", body)
    assert isinstance(sessions, list)
    expect.that(body.get("total") == len(sessions), f"total == {len(sessions)}", body.get("total"))
    listed = {info.get("session_id") for info in sessions if isinstance(info, dict)}
    expect.that(made <= listed, "every created session listed", sorted(made - listed))
    for info in sessions:
        ok = (
            isinstance(info, dict)
            and isinstance(info.get("session_id"), str)
            and isinstance(info.get("message_count"), int)
            and isinstance(info.get("last_activity"), str)
            and (info.get("current_agent") is None or isinstance(info.get("current_agent"), str))
        )
        expect.that(ok, "each entry a SessionInfo", info)
