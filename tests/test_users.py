"""Users and sharing in the reference (X-AUTH-1, X-SHARE-1): real servers on loopback ports.

Three users, `ann`, `ben` and `cy`; `ann` owns what the tests make unless they say otherwise.
"""

import asyncio
import json
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import AnyHttpUrl, SecretStr, ValidationError
from sqlalchemy import text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conformance.targets import Endpoints
from conformance.targets.reference_target import ReferenceTarget
from conformance.transcript import Transcript
from reference.gateway.app import create_app as create_gateway_app
from reference.gateway.users import TokenTable, bearer_token, split_token
from reference.runtime.app import create_app as create_runtime_app
from reference.runtime.store import SessionNotFound, Store
from reference.server import ThreadedServer
from reference.settings import GatewaySettings
from tests.fixtures.stack import INTERNAL_KEY, deadline, runtime_settings
from tests.test_cli import Served

TOKENS = {"ann": "ann-token-1", "ben": "ben-token-2", "cy": "cy-token-3"}
USER_HEADER = "X-Sessionlab-User"


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


@dataclass
class UserStack:
    runtime: ThreadedServer
    gateway: ThreadedServer

    @property
    def ws_url(self) -> str:
        return self.gateway.url.replace("http://", "ws://", 1)


def start_user_stack(data_dir: Path, **gateway_overrides: Any) -> UserStack:
    runtime = ThreadedServer(create_runtime_app(runtime_settings(data_dir))).start()
    settings = GatewaySettings(
        runtime_url=AnyHttpUrl(runtime.url),
        internal_key=SecretStr(INTERNAL_KEY),
        user_tokens={token: user for user, token in TOKENS.items()},
        **gateway_overrides,
    )
    try:
        # Debug level: the test of the logs must see everything the server would ever write.
        gateway = ThreadedServer(create_gateway_app(settings), log_level="debug").start()
    except BaseException:
        runtime.stop()
        raise
    return UserStack(runtime, gateway)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[UserStack]:
    started = start_user_stack(tmp_path)
    yield started
    started.gateway.stop()
    started.runtime.stop()


@pytest.fixture
async def http(stack: UserStack) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway client with no token of its own: each call says whose it is."""
    async with httpx.AsyncClient(
        base_url=stack.gateway.url, timeout=deadline(10), trust_env=False
    ) as client:
        yield client


@pytest.fixture
async def runtime(stack: UserStack) -> AsyncIterator[httpx.AsyncClient]:
    """The runtime itself, with its key and without any user."""
    async with httpx.AsyncClient(
        base_url=stack.runtime.url,
        headers={"X-Internal-Auth": INTERNAL_KEY},
        timeout=deadline(10),
        trust_env=False,
    ) as client:
        yield client


async def create(http: httpx.AsyncClient, user: str) -> str:
    response = await http.post("/sessions", headers=bearer(user))
    assert response.status_code == 200, response.text
    session_id: str = response.json()["session_id"]
    return session_id


async def recv_frame(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(deadline(5)):
        frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


async def say(ws: ClientConnection, content: str) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"type": "user_message", "content": content, "role": "user"}))
    frames = [await recv_frame(ws)]
    while frames[-1]["type"] == "assistant_message" and not frames[-1]["is_final"]:
        frames.append(await recv_frame(ws))
    return frames


async def close_code(url: str, headers: dict[str, str] | None = None) -> int | None:
    """The close code of a socket the gateway refuses (it must close without being asked)."""
    async with connect(url, additional_headers=headers, open_timeout=deadline(5)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(deadline(5)):
                await ws.recv()
    frame = closed.value.rcvd
    return frame.code if frame is not None else None


async def with_text(stack: UserStack, http: httpx.AsyncClient, user: str, content: str) -> str:
    session_id = await create(http, user)
    async with connect(
        f"{stack.ws_url}/ws/{session_id}", additional_headers=bearer(user), open_timeout=5
    ) as ws:
        assert (await say(ws, content))[-1]["is_final"] is True
    return session_id


async def share(http: httpx.AsyncClient, session_id: str, owner: str, reader: str) -> Any:
    response = await http.post(
        f"/sessions/{session_id}/shares", json={"user": reader}, headers=bearer(owner)
    )
    assert response.status_code == 201, response.text
    return response.json()


def listed(response: httpx.Response) -> set[str]:
    return {item["session_id"] for item in response.json()["sessions"]}


# Tokens and the guard

GUARDED = [
    ("GET", "/sessions"),
    ("POST", "/sessions"),
    ("GET", "/sessions/session_0000000000000000/history"),
    ("GET", "/agents"),
    ("DELETE", "/sessions/session_0000000000000000"),
    ("POST", "/sessions/session_0000000000000000/shares"),
    ("GET", "/no-such-path"),
]


@pytest.mark.parametrize("path", ["/health", "/docs", "/openapi.json", "/redoc"])
async def test_health_and_docs_answer_without_a_token(http: httpx.AsyncClient, path: str) -> None:
    assert (await http.get(path)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="none"),
        pytest.param({"Authorization": "Bearer nope"}, id="unknown"),
        pytest.param({"Authorization": f"Bearer {TOKENS['ann']}x"}, id="longer"),
        pytest.param({"Authorization": f"Bearer {TOKENS['ann'][:-1]}"}, id="prefix"),
        pytest.param({"Authorization": f"Basic {TOKENS['ann']}"}, id="other-scheme"),
        pytest.param({"Authorization": "Bearer"}, id="empty"),
    ],
)
async def test_rest_call_without_a_valid_token_is_a_json_401(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path in GUARDED:
        response = await http.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json() == {"error": "unauthorized: send Authorization: Bearer <token>"}


async def test_bearer_scheme_is_case_insensitive(http: httpx.AsyncClient) -> None:
    response = await http.get("/sessions", headers={"Authorization": f"bearer {TOKENS['ben']}"})
    assert response.status_code == 200


async def test_token_in_the_query_does_not_sign_in_a_rest_call(http: httpx.AsyncClient) -> None:
    assert (await http.get(f"/sessions?token={TOKENS['ann']}")).status_code == 401


async def test_refused_create_makes_no_session(
    http: httpx.AsyncClient, runtime: httpx.AsyncClient
) -> None:
    await http.post("/sessions", headers={"Authorization": "Bearer nope"})
    assert (await runtime.get("/sessions")).json()["total"] == 0


def test_client_key_and_user_token_are_both_required(tmp_path: Path) -> None:
    stack = start_user_stack(tmp_path, client_key=SecretStr("client-key"))
    try:
        url = f"{stack.gateway.url}/sessions"
        key = {"X-Internal-Auth": "client-key"}
        assert httpx.get(url, headers=key).status_code == 401
        assert httpx.get(url, headers=bearer("ann")).status_code == 401
        assert httpx.get(url, headers={**key, **bearer("ann")}).status_code == 200
    finally:
        stack.gateway.stop()
        stack.runtime.stop()


def test_token_table_finds_the_user_of_a_token_only() -> None:
    table = TokenTable({"t1": "ann", "t2": "ben", "t3": "ben"})
    assert [table.user_for(t) for t in ("t1", "t2", "t3", "t", "t1 ", "", None)] == [
        "ann",
        "ben",
        "ben",
        None,
        None,
        None,
        None,
    ]
    assert table.users() == frozenset({"ann", "ben"})


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (b"Bearer abc", "abc"),
        (b"bearer  abc ", "abc"),
        (b"Basic abc", None),
        (b"Bearer", None),
        (None, None),
    ],
)
def test_bearer_token_reads_the_bearer_scheme_alone(value: bytes | None, token: str | None) -> None:
    assert bearer_token(value) == token


@pytest.mark.parametrize(
    ("query", "token", "rest"),
    [
        (b"token=abc", "abc", b""),
        (b"a=1&token=a%2Bb&b=2", "a+b", b"a=1&b=2"),
        (b"token=one&token=two", "one", b""),
        (b"a=1", None, b"a=1"),
        (b"", None, b""),
    ],
)
def test_split_token_takes_the_token_out_of_the_query(
    query: bytes, token: str | None, rest: bytes
) -> None:
    assert split_token(query) == (token, rest)


def test_settings_refuse_bad_tokens_without_showing_any() -> None:
    with pytest.raises(ValidationError) as refused:
        GatewaySettings(user_tokens={"good-token": "ann", "bad token": "ben"})
    assert "token 2 (of user 'ben')" in str(refused.value)
    assert "good-token" not in str(refused.value)
    assert "bad token" not in str(refused.value)
    assert "good-token" not in repr(GatewaySettings(user_tokens={"good-token": "ann"}))


def test_settings_refuse_user_names_that_cannot_travel_in_a_header() -> None:
    with pytest.raises(ValidationError, match="user name 'a b'"):
        GatewaySettings(user_tokens={"t": "a b"})


def test_settings_read_user_tokens_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SESSIONLAB_USER_TOKENS", json.dumps({"t1": "ann", "t2": "ben"}))
    assert GatewaySettings().user_tokens == {"t1": "ann", "t2": "ben"}


# Ownership (X-AUTH-1)


async def test_each_user_lists_only_own_sessions_with_their_owner(
    http: httpx.AsyncClient, runtime: httpx.AsyncClient
) -> None:
    anns = {await create(http, "ann"), await create(http, "ann")}
    bens = {await create(http, "ben")}
    for user, own in (("ann", anns), ("ben", bens), ("cy", set())):
        response = await http.get("/sessions", headers=bearer(user))
        assert listed(response) == own
        assert response.json()["total"] == len(own)
        assert {item["owner"] for item in response.json()["sessions"]} <= {user}
    # The runtime without a user is the view with user auth off: all of them, no owner field.
    everything = await runtime.get("/sessions")
    assert listed(everything) == anns | bens
    assert all("owner" not in item for item in everything.json()["sessions"])


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/sessions/{id}/history", None),
        ("GET", "/agents/{id}/current", None),
        ("GET", "/sessions/{id}/export?format=json", None),
        ("GET", "/sessions/{id}/export?format=markdown", None),
        ("PATCH", "/sessions/{id}", {"title": "taken"}),
        ("DELETE", "/sessions/{id}", None),
        ("GET", "/sessions/{id}/shares", None),
        ("POST", "/sessions/{id}/shares", {"user": "ben"}),
        ("DELETE", "/sessions/{id}/shares/ben", None),
    ],
)
async def test_another_users_session_is_404_like_an_unknown_one(
    stack: UserStack,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    session_id = await with_text(stack, http, "ann", "ann's private words")
    response = await http.request(
        method, path.format(id=session_id), json=body, headers=bearer("ben")
    )
    unknown = await http.request(
        method, path.format(id="session_0000000000000000"), json=body, headers=bearer("ben")
    )
    assert response.status_code == 404
    assert "private" not in response.text
    assert response.json().keys() == unknown.json().keys()
    history = await http.get(f"/sessions/{session_id}/history", headers=bearer("ann"))
    assert history.json()["message_count"] == 2
    assert (await http.get("/sessions", headers=bearer("ann"))).json()["sessions"][0][
        "title"
    ] is None


async def test_a_client_cannot_claim_another_user_with_the_user_header(
    http: httpx.AsyncClient,
) -> None:
    session_id = await create(http, "ann")
    claimed = {**bearer("ben"), USER_HEADER: "ann"}
    assert (await http.get(f"/sessions/{session_id}/history", headers=claimed)).status_code == 404
    assert listed(await http.get("/sessions", headers=claimed)) == set()


async def test_search_finds_only_the_users_sessions(
    stack: UserStack, http: httpx.AsyncClient
) -> None:
    anns = await with_text(stack, http, "ann", "needle of ann")
    bens = await with_text(stack, http, "ben", "needle of ben")
    for user, own in (("ann", anns), ("ben", bens)):
        found = await http.get("/sessions/search", params={"q": "needle"}, headers=bearer(user))
        assert [hit["session_id"] for hit in found.json()["results"]] == [own]


async def test_owner_renames_and_deletes_own_session(http: httpx.AsyncClient) -> None:
    session_id = await create(http, "ann")
    renamed = await http.patch(
        f"/sessions/{session_id}", json={"title": "mine"}, headers=bearer("ann")
    )
    assert renamed.status_code == 200
    assert renamed.json()["owner"] == "ann"
    deleted = await http.delete(f"/sessions/{session_id}", headers=bearer("ann"))
    assert deleted.status_code == 204


# Sockets (X-AUTH-1)


@pytest.mark.parametrize(
    "headers",
    [pytest.param(None, id="none"), pytest.param({"Authorization": "Bearer nope"}, id="wrong")],
)
async def test_socket_without_a_valid_token_is_closed_4401(
    stack: UserStack, http: httpx.AsyncClient, headers: dict[str, str] | None
) -> None:
    session_id = await create(http, "ann")
    assert await close_code(f"{stack.ws_url}/ws/{session_id}", headers) == 4401


async def test_socket_to_another_users_session_is_closed_4403(
    stack: UserStack, http: httpx.AsyncClient
) -> None:
    session_id = await create(http, "ann")
    assert await close_code(f"{stack.ws_url}/ws/{session_id}", bearer("ben")) == 4403


async def test_socket_to_an_unknown_session_is_still_closed_4404(
    stack: UserStack,
) -> None:
    url = f"{stack.ws_url}/ws/session_0000000000000000"
    assert await close_code(url, bearer("ann")) == 4404


async def test_header_token_wins_over_the_query_token(
    stack: UserStack, http: httpx.AsyncClient
) -> None:
    session_id = await create(http, "ann")
    url = f"{stack.ws_url}/ws/{session_id}?token={TOKENS['ann']}"
    assert await close_code(url, bearer("ben")) == 4403


async def test_socket_takes_the_token_in_the_query_and_never_logs_it(
    stack: UserStack, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session_id = await create(http, "ann")
    url = f"{stack.ws_url}/ws/{session_id}?token={TOKENS['ann']}"
    async with connect(url, open_timeout=deadline(5)) as ws:
        assert (await say(ws, "by query"))[-1] == {
            "type": "assistant_message",
            "content": "query",
            "is_final": True,
        }
    async with connect(url, additional_headers=bearer("ann"), open_timeout=deadline(5)):
        pass
    await http.get(f"/sessions?token={TOKENS['ben']}", headers=bearer("ann"))
    # The servers' lines only: this test's own clients log what they send.
    clients = ("websockets.client", "httpx", "httpcore")
    server_side = [r for r in caplog.records if not r.name.startswith(clients)]
    logged = "\n".join(record.getMessage() for record in server_side)
    assert f"/ws/{session_id}" in logged
    assert all(token not in logged for token in TOKENS.values())
    # The handshake was logged at debug level, redacted: the test saw what a server would write.
    assert "?token=<redacted>" in logged
    assert "authorization: <redacted>" in logged.lower()


async def test_the_owners_socket_stores_turns_as_the_owners(
    stack: UserStack, http: httpx.AsyncClient
) -> None:
    session_id = await with_text(stack, http, "ann", "hello")
    history = await http.get(f"/sessions/{session_id}/history", headers=bearer("ann"))
    assert history.json()["messages"] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hello"},
    ]


# Sharing (X-SHARE-1)


async def test_owner_shares_and_the_reader_reads_and_lists_it(
    stack: UserStack, http: httpx.AsyncClient
) -> None:
    session_id = await with_text(stack, http, "ann", "shared words")
    assert await share(http, session_id, "ann", "ben") == {
        "session_id": session_id,
        "shared_with": ["ben"],
    }
    history = await http.get(f"/sessions/{session_id}/history", headers=bearer("ben"))
    assert history.status_code == 200
    assert history.json()["messages"][0] == {"role": "user", "content": "shared words"}
    ben_list = await http.get("/sessions", headers=bearer("ben"))
    assert [(s["session_id"], s["owner"]) for s in ben_list.json()["sessions"]] == [
        (session_id, "ann")
    ]
    export = await http.get(f"/sessions/{session_id}/export", headers=bearer("ben"))
    assert export.status_code == 200
    shares = await http.get(f"/sessions/{session_id}/shares", headers=bearer("ann"))
    assert shares.json() == {"session_id": session_id, "shared_with": ["ben"]}


async def test_sharing_twice_lists_the_reader_once(http: httpx.AsyncClient) -> None:
    session_id = await create(http, "ann")
    await share(http, session_id, "ann", "ben")
    await share(http, session_id, "ann", "cy")
    assert await share(http, session_id, "ann", "ben") == {
        "session_id": session_id,
        "shared_with": ["ben", "cy"],
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param({"user": "zed"}, "unknown user: zed", id="unknown-user"),
        pytest.param({"user": "ann"}, "ann owns this session", id="the-owner"),
        pytest.param({"user": "a b"}, "invalid request", id="bad-name"),
        pytest.param({}, "invalid request", id="no-user"),
    ],
)
async def test_share_that_names_no_other_user_is_422(
    http: httpx.AsyncClient, body: dict[str, str], error: str
) -> None:
    session_id = await create(http, "ann")
    response = await http.post(f"/sessions/{session_id}/shares", json=body, headers=bearer("ann"))
    assert response.status_code == 422
    assert response.json()["error"].startswith(error)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/sessions/{id}", {"title": "mine now"}),
        ("DELETE", "/sessions/{id}", None),
        ("POST", "/sessions/{id}/shares", {"user": "cy"}),
        ("GET", "/sessions/{id}/shares", None),
        ("DELETE", "/sessions/{id}/shares/ben", None),
    ],
)
async def test_reader_writes_are_403_and_change_nothing(
    http: httpx.AsyncClient, method: str, path: str, body: dict[str, str] | None
) -> None:
    session_id = await create(http, "ann")
    await share(http, session_id, "ann", "ben")
    response = await http.request(
        method, path.format(id=session_id), json=body, headers=bearer("ben")
    )
    assert response.status_code == 403
    assert response.json()["error"].startswith("read-only")
    shares = await http.get(f"/sessions/{session_id}/shares", headers=bearer("ann"))
    assert shares.json()["shared_with"] == ["ben"]
    ann_list = (await http.get("/sessions", headers=bearer("ann"))).json()["sessions"]
    assert [(s["session_id"], s["title"]) for s in ann_list] == [(session_id, None)]


async def test_reader_socket_is_read_only_and_stays_open(
    stack: UserStack, http: httpx.AsyncClient
) -> None:
    session_id = await with_text(stack, http, "ann", "first")
    await share(http, session_id, "ann", "ben")
    async with connect(
        f"{stack.ws_url}/ws/{session_id}", additional_headers=bearer("ben"), open_timeout=5
    ) as ws:
        for attempt in ("from ben", "again"):
            frames = await say(ws, attempt)
            assert frames == [
                {
                    "type": "error",
                    "content": "read-only: this session is shared with you; "
                    "only its owner can post to it",
                }
            ]
        await ws.send("not json")
        assert (await recv_frame(ws))["type"] == "error"
    history = await http.get(f"/sessions/{session_id}/history", headers=bearer("ann"))
    assert history.json()["message_count"] == 2


async def test_a_third_user_still_gets_404_and_4403_after_a_share(
    stack: UserStack, http: httpx.AsyncClient
) -> None:
    session_id = await with_text(stack, http, "ann", "for ben")
    await share(http, session_id, "ann", "ben")
    history = await http.get(f"/sessions/{session_id}/history", headers=bearer("cy"))
    assert history.status_code == 404
    assert listed(await http.get("/sessions", headers=bearer("cy"))) == set()
    assert await close_code(f"{stack.ws_url}/ws/{session_id}", bearer("cy")) == 4403


async def test_unsharing_hides_the_session_again(stack: UserStack, http: httpx.AsyncClient) -> None:
    session_id = await create(http, "ann")
    await share(http, session_id, "ann", "ben")
    gone = await http.delete(f"/sessions/{session_id}/shares/ben", headers=bearer("ann"))
    assert gone.status_code == 204
    again = await http.delete(f"/sessions/{session_id}/shares/ben", headers=bearer("ann"))
    assert again.status_code == 404
    history = await http.get(f"/sessions/{session_id}/history", headers=bearer("ben"))
    assert history.status_code == 404
    assert await close_code(f"{stack.ws_url}/ws/{session_id}", bearer("ben")) == 4403


async def test_deleting_a_session_deletes_its_shares(
    stack: UserStack, http: httpx.AsyncClient
) -> None:
    session_id = await create(http, "ann")
    await share(http, session_id, "ann", "ben")
    assert (await http.delete(f"/sessions/{session_id}", headers=bearer("ann"))).status_code == 204
    assert listed(await http.get("/sessions", headers=bearer("ben"))) == set()
    store = await Store.open(f"sqlite+aiosqlite:///{stack_data_dir(stack)}/sessions.db")
    try:
        assert await store.shares(session_id) == []
    finally:
        await store.close()


def stack_data_dir(stack: UserStack) -> Path:
    app: Any = stack.runtime.app
    data_dir: Path = app.state.settings.data_dir
    return data_dir


# The runtime on its own


async def test_sharing_without_users_is_400(runtime: httpx.AsyncClient) -> None:
    session_id = (await runtime.post("/sessions")).json()["session_id"]
    response = await runtime.post(f"/sessions/{session_id}/shares", json={"user": "ben"})
    assert response.status_code == 400
    assert response.json()["error"] == "sharing needs user auth, which is off"


async def test_sessions_made_without_users_are_hidden_from_users(
    http: httpx.AsyncClient, runtime: httpx.AsyncClient
) -> None:
    session_id = (await runtime.post("/sessions")).json()["session_id"]
    assert listed(await http.get("/sessions", headers=bearer("ann"))) == set()
    history = await http.get(f"/sessions/{session_id}/history", headers=bearer("ann"))
    assert history.status_code == 404
    assert (await runtime.get(f"/sessions/{session_id}/history")).status_code == 200


async def test_access_route_tells_the_gateway_what_a_user_may_do(
    http: httpx.AsyncClient, runtime: httpx.AsyncClient
) -> None:
    session_id = await create(http, "ann")
    await share(http, session_id, "ann", "ben")
    answers = {}
    for user in ("ann", "ben", "cy"):
        response = await runtime.get(f"/sessions/{session_id}/access", headers={USER_HEADER: user})
        answers[user] = response.json()["access"]
    assert answers == {"ann": "owner", "ben": "reader", "cy": "none"}
    unknown = await runtime.get("/sessions/nope/access", headers={USER_HEADER: "ann"})
    assert unknown.status_code == 404
    # Not proxied: the gateway keeps it for itself.
    proxied = await http.get(f"/sessions/{session_id}/access", headers=bearer("ann"))
    assert proxied.status_code == 404


@pytest.mark.parametrize("user", ["x" * 65, "ann ben", "-ann", ""])
async def test_runtime_refuses_a_user_name_the_gateway_never_sends(
    runtime: httpx.AsyncClient, user: str
) -> None:
    created = await runtime.post("/sessions", headers={USER_HEADER: user})
    assert created.status_code == 422, created.text
    assert USER_HEADER in created.text
    assert (await runtime.get("/sessions")).json()["total"] == 0


def test_tolerant_stream_creates_the_session_for_its_user(tmp_path: Path) -> None:
    settings = runtime_settings(tmp_path, strict=False)
    with ThreadedServer(create_runtime_app(settings)) as server:
        key = {"X-Internal-Auth": INTERNAL_KEY}
        message = {"type": "user_message", "content": "hi", "role": "user"}
        body = {"session_id": "ide-session", "message": message}
        as_ann = {**key, USER_HEADER: "ann"}
        as_ben = {**key, USER_HEADER: "ben"}
        url = f"{server.url}/agent/message/stream"
        assert httpx.post(url, json=body, headers=as_ann).status_code == 200
        assert httpx.post(url, json=body, headers=as_ben).status_code == 404
        listed_for_ann = httpx.get(f"{server.url}/sessions", headers=as_ann).json()
        assert [s["owner"] for s in listed_for_ann["sessions"]] == ["ann"]


async def test_a_store_made_before_users_gains_the_owner_column(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/sessions.db"
    old = await Store.open(url)
    session_id = (await old.create_session()).session_id
    async with old.engine.begin() as connection:
        await connection.execute(text("DROP INDEX ix_sessions_owner"))
        await connection.execute(text("ALTER TABLE sessions DROP COLUMN owner"))
        # Made before users, so before migrations too: no revision stamped.
        await connection.execute(text("DROP TABLE alembic_version"))
    await old.close()
    store = await Store.open(url)
    try:
        assert (await store.get_session(session_id)).owner is None
        mine = await store.create_session(owner="ann")
        assert [s.session_id for s in await store.list_sessions("ann")] == [mine.session_id]
    finally:
        await store.close()


# The suite's side


def test_endpoints_send_the_first_users_token_on_rest_and_sockets() -> None:
    endpoints = Endpoints("http://127.0.0.1:1", client_key="k", user_tokens=dict(TOKENS))
    assert endpoints.client_headers() == {"X-Internal-Auth": "k", **bearer("ann")}
    assert endpoints.socket_headers() == bearer("ann")
    assert endpoints.user_headers("cy") == bearer("cy")
    plain = Endpoints("http://127.0.0.1:1")
    assert plain.client_headers() == {}
    assert plain.socket_headers() == {}


def test_transcript_redacts_user_tokens() -> None:
    record = Transcript()
    record.add_secrets(TOKENS.values())
    record.record("ws-open", f"ws://127.0.0.1:1/ws/s?token={TOKENS['ben']}")
    assert TOKENS["ben"] not in record.render()
    assert "token=<redacted>" in record.render()


async def test_reference_target_with_users_claims_auth_and_sharing() -> None:
    async with ReferenceTarget(user_tokens={"ann": "t-ann", "ben": "t-ben"}) as target:
        assert {"auth", "sharing"} <= target.profiles
        endpoints = target.endpoints
        assert endpoints.user_tokens == {"ann": "t-ann", "ben": "t-ben"}
        async with httpx.AsyncClient(timeout=deadline(10), trust_env=False) as client:
            response = await client.get(
                f"{endpoints.gateway_url}/sessions", headers=endpoints.client_headers()
            )
        assert response.status_code == 200
    assert "auth" not in ReferenceTarget().profiles


# The command line


def test_serve_takes_user_tokens_and_shows_only_the_names(
    tmp_path: Path,
) -> None:
    served = Served(
        "--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path),
        "--user-token", "ann=cli-token-a", "--user-token", "ben=cli-token-b",
    )  # fmt: skip
    try:
        gateway = served.urls["gateway"]
        assert httpx.get(f"{gateway}/sessions").status_code == 401
        auth = {"Authorization": "Bearer cli-token-b"}
        assert httpx.post(f"{gateway}/sessions", headers=auth).status_code == 200
    finally:
        code, log = served.stop(signal.SIGTERM)
    assert code == 0
    assert "cli-token" not in log


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--user-token", "ann"], id="no-equals"),
        pytest.param(["--user-token", "=secret-1"], id="no-name"),
        pytest.param(["--user-token", "ann=secret-1", "--user-token", "ben=secret-1"], id="twice"),
        pytest.param(["--user-token", "a b=secret-1"], id="bad-name"),
    ],
)
def test_serve_refuses_bad_user_tokens_without_printing_them(flags: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sessionlab.cli", "serve", "--gateway-port", "0", *flags],
        capture_output=True,
        text=True,
        timeout=deadline(30),
        check=False,
    )
    assert result.returncode == 2
    assert "secret-1" not in result.stderr + result.stdout
    assert "user" in result.stderr


async def test_owners_and_shares_on_postgresql_including_an_old_store(postgres_url: str) -> None:
    # `user` is a reserved word there: the shares table must still work, and the column be added.
    old = await Store.open(postgres_url)
    ownerless = (await old.create_session()).session_id
    async with old.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE sessions DROP COLUMN owner"))
        await connection.execute(text("DROP TABLE alembic_version"))
    await old.close()
    store = await Store.open(postgres_url)
    try:
        mine = (await store.create_session(owner="ann")).session_id
        assert await store.share(mine, "ben") == ["ben"]
        assert [s.session_id for s in await store.list_sessions("ben")] == [mine]
        assert (await store.access(mine, "ben"))[1] == "reader"
        assert (await store.access(ownerless, "ann"))[1] == "none"
        await store.delete_session(mine)
        assert await store.shares(mine) == []
        # PostgreSQL refuses NUL in text: such an id is not found, never a database error.
        with pytest.raises(SessionNotFound):
            await store.access("nul\x00id", "ann")
    finally:
        await store.close()
