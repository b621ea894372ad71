"""The reference runtime's REST surface (R-AUTH, R-HEALTH, R-CREATE, R-LIST, R-HIST, R-AGENTS)."""

import asyncio
import logging

import httpx
import pytest

from contract.bodies import CreatedSession, CurrentAgent, History, SessionList
from contract.ids import is_server_session_id
from reference.server import ThreadedServer
from tests.fixtures.stack import INTERNAL_KEY, deadline

pytestmark = pytest.mark.usefixtures("runtime_server")


def turn(client: httpx.Client, session_id: str, message: dict[str, object]) -> str:
    response = client.post(
        "/agent/message/stream", json={"session_id": session_id, "message": message}
    )
    assert response.status_code == 200, response.text
    return response.text


def say(client: httpx.Client, session_id: str, text: str) -> str:
    return turn(client, session_id, {"type": "user_message", "content": text, "role": "user"})


def test_health_needs_no_key(runtime_server: ThreadedServer) -> None:
    response = httpx.get(f"{runtime_server.url}/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "service": "sessionlab-runtime",
        "version": "0.1.0",
    }


@pytest.mark.parametrize("key", [None, "", "wrong", INTERNAL_KEY + "x"], ids=repr)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sessions"),
        ("POST", "/sessions"),
        ("GET", "/sessions/x/history"),
        ("GET", "/agents"),
        ("GET", "/agents/x/current"),
        ("POST", "/agent/message/stream"),
        ("GET", "/no/such/path"),
    ],
)
def test_every_path_but_health_refuses_a_missing_or_wrong_key(
    runtime_server: ThreadedServer, method: str, path: str, key: str | None
) -> None:
    headers = {} if key is None else {"X-Internal-Auth": key}
    response = httpx.request(method, f"{runtime_server.url}{path}", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "unauthorized"


def test_refused_create_does_no_work(runtime_server: ThreadedServer, client: httpx.Client) -> None:
    httpx.post(f"{runtime_server.url}/sessions", headers={"X-Internal-Auth": "wrong"})
    assert client.get("/sessions").json()["total"] == 0


def test_key_never_reaches_logs_or_bodies(
    client: httpx.Client, runtime_server: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = client.post("/sessions")
    session_id = created.json()["session_id"]
    bodies = [
        created.text,
        say(client, session_id, "hello"),
        client.get(f"/sessions/{session_id}/history").text,
        httpx.get(f"{runtime_server.url}/sessions", headers={"X-Internal-Auth": "bad"}).text,
    ]
    assert INTERNAL_KEY not in caplog.text
    assert all(INTERNAL_KEY not in body for body in bodies)


@pytest.mark.parametrize("body", [None, b"{}"], ids=["no-body", "empty-object"])
def test_create_answers_a_fresh_session(client: httpx.Client, body: bytes | None) -> None:
    response = client.post("/sessions", content=body)
    assert response.status_code in (200, 201)
    created = CreatedSession.model_validate(response.json())
    assert is_server_session_id(created.session_id)
    assert created.current_agent == "orchestrator"
    assert created.message_count == 0


@pytest.mark.parametrize("body", [b"[]", b"not json", b'"x"'], ids=["array", "text", "string"])
def test_create_refuses_a_body_that_is_not_an_object(client: httpx.Client, body: bytes) -> None:
    response = client.post("/sessions", content=body)
    assert response.status_code == 422
    assert isinstance(response.json()["error"], str)


def test_create_logs_before_and_after(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessionlab.runtime")
    session_id = client.post("/sessions").json()["session_id"]
    lines = [r.getMessage() for r in caplog.records if r.name == "sessionlab.runtime"]
    assert lines == ["Creating new session", f"Created new session: {session_id}"]


async def test_concurrent_creates_give_distinct_ids(runtime_server: ThreadedServer) -> None:
    async with httpx.AsyncClient(
        base_url=runtime_server.url,
        headers={"X-Internal-Auth": INTERNAL_KEY},
        timeout=deadline(30),
        limits=httpx.Limits(max_connections=20),
    ) as client:
        # Requests queued beyond the pool cost httpx time per waiter: keep the queue short.
        gate = asyncio.Semaphore(20)

        async def create() -> str:
            async with gate:
                response = await client.post("/sessions")
            assert response.status_code == 200
            return str(response.json()["session_id"])

        async with asyncio.timeout(deadline(120)):
            made = await asyncio.gather(*(create() for _ in range(1000)))
        listed = (await client.get("/sessions")).json()
    assert len(set(made)) == 1000
    assert listed["total"] == 1000
    assert {s["session_id"] for s in listed["sessions"]} == set(made)


def test_list_shows_every_session_with_its_counts(client: httpx.Client) -> None:
    first = client.post("/sessions").json()["session_id"]
    second = client.post("/sessions").json()["session_id"]
    say(client, second, "one two")
    listing = SessionList.model_validate(client.get("/sessions").json())
    counts = {info.session_id: info.message_count for info in listing.sessions}
    assert counts == {first: 0, second: 2}
    assert listing.total == 2
    # Most recent activity first: the session just chatted in leads.
    assert listing.sessions[0].session_id == second


def test_history_of_a_new_session_is_empty_and_consistent(client: httpx.Client) -> None:
    session_id = client.post("/sessions").json()["session_id"]
    history = History.model_validate(client.get(f"/sessions/{session_id}/history").json())
    assert history.session_id == session_id
    assert history.messages == []
    assert history.message_count == 0
    assert history.current_agent == "orchestrator"
    assert history.agent_history == []


@pytest.mark.parametrize(
    "odd_id",
    [
        "session_0000000000000000",
        "сессия-😀",
        "x" * 1000,
        "..%2F..",
        "..%2F..%2Fetc%2Fpasswd",
        "a'b\"c",
        "%00",
        "%FF%FE",
        " ",
    ],
    ids=["unknown", "unicode", "long", "dotdot", "traversal", "quotes", "nul", "bad-utf8", "space"],
)
def test_unknown_and_odd_ids_answer_404_or_422_never_5xx(
    client: httpx.Client, runtime_server: ThreadedServer, odd_id: str
) -> None:
    for path in (f"/sessions/{odd_id}/history", f"/agents/{odd_id}/current"):
        raw = httpx.URL(runtime_server.url + path)
        response = client.get(raw)
        assert response.status_code in (404, 422), (path, response.status_code, response.text)
        assert isinstance(response.json()["error"], str)


def test_unknown_id_answers_404_with_an_error_string(client: httpx.Client) -> None:
    response = client.get("/sessions/session_ffffffffffffffff/history")
    assert response.status_code == 404
    assert response.json()["error"] == "session not found: session_ffffffffffffffff"


def test_agents_list_includes_the_orchestrator(client: httpx.Client) -> None:
    agents = client.get("/agents").json()
    assert {agent["type"] for agent in agents} == {
        "orchestrator",
        "coder",
        "architect",
        "debug",
        "ask",
    }
    assert all(isinstance(agent["allowed_tools"], list) for agent in agents)


def test_current_agent_answers_for_a_session_with_no_message_yet(client: httpx.Client) -> None:
    session_id = client.post("/sessions").json()["session_id"]
    response = client.get(f"/agents/{session_id}/current")
    assert response.status_code == 200
    assert CurrentAgent.model_validate(response.json()) == CurrentAgent(
        session_id=session_id, current_agent="orchestrator", agent_history=[], switch_count=0
    )


def test_huge_and_wrongly_typed_bodies_get_4xx_json(client: httpx.Client) -> None:
    huge = client.post("/sessions", content=b"{" + b" " * (5 * 1024 * 1024) + b"}")
    assert huge.status_code == 413
    wrong = client.post("/agent/message/stream", json={"session_id": 5, "message": "x"})
    assert wrong.status_code == 422
    assert wrong.json()["error"].startswith("invalid stream request: session_id")
