"""X-AUTH-1 and X-SHARE-1: users with bearer tokens own their sessions and share them read-only.

The users come from the target (`Endpoints.user_tokens`, name -> token). The first user, the one
every other check runs as, is the owner here; the second is another user (and the reader of a
share); the third, where there is one, a bystander.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from conformance.failures import Expect
from conformance.plugin import SocketOpener, deadline
from conformance.probes import TEST_HEADER, SocketRefused, http_probe
from conformance.target_runner import TargetRunner
from conformance.transcript import Transcript
from contract.bodies import ErrorBody
from contract.frames import ServerFrame
from contract.routes import (
    CREATE_SESSION,
    CURRENT_AGENT,
    DELETE_SESSION,
    EXPORT,
    HISTORY,
    LIST_AGENTS,
    LIST_SESSIONS,
    LIST_SHARES,
    RENAME_SESSION,
    SEARCH,
    SHARE,
    Route,
)

from .support import create_session, dumped, expect_body, json_object, turn, user_message

pytestmark = pytest.mark.asyncio

NO_TOKEN = 4401
OTHER_USERS_SESSION = 4403


class Users:
    """HTTP clients of the gateway as one user each, or with no or a wrong token."""

    def __init__(
        self, target: TargetRunner, transcript: Transcript, request: pytest.FixtureRequest
    ) -> None:
        assert target.endpoints is not None
        self.endpoints = target.endpoints
        self.transcript = transcript
        self.test_id = request.node.nodeid
        self.timeout = deadline(15)

    def names(self, needed: int) -> list[str]:
        """The target's users, the owner first; a check needing more than there are is skipped."""
        names = list(self.endpoints.user_tokens)
        if len(names) < needed:
            pytest.skip(
                f"the target names {len(names)} user(s) and this check needs {needed}: "
                "give the users and their tokens in the target description"
            )
        return names

    def token(self, user: str) -> str:
        return self.endpoints.user_tokens[user]

    def headers(self, token: str | None) -> dict[str, str]:
        base = {
            name: value
            for name, value in self.endpoints.client_headers().items()
            if name.lower() != "authorization"
        }
        if token is not None:
            base["Authorization"] = f"Bearer {token}"
        return {**base, TEST_HEADER: self.test_id}

    @asynccontextmanager
    async def client(self, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
        url = self.endpoints.gateway_url
        async with http_probe(url, self.transcript, self.headers(token), self.timeout) as client:
            yield client

    @asynccontextmanager
    async def as_user(self, user: str) -> AsyncIterator[httpx.AsyncClient]:
        async with self.client(self.token(user)) as client:
            yield client


@pytest.fixture
def users(
    sessionlab_target: TargetRunner, transcript: Transcript, request: pytest.FixtureRequest
) -> Users:
    return Users(sessionlab_target, transcript, request)


async def _session_with_text(
    owner: httpx.AsyncClient, open_ws: SocketOpener, expect: Expect, text: str
) -> str:
    """A session of the first user holding `text`, seen in the owner's own history."""
    session_id = await create_session(owner)
    async with open_ws(session_id) as ws:
        answered = "the owner's message to its own session to be answered"
        await turn(ws, user_message(text), expect, answered)
    response = await owner.get(HISTORY.path(session_id=session_id))
    expect.that(
        response.status_code == 200 and text in response.text,
        f"the owner to read its session's history, with {text!r}",
        f"{response.status_code} {response.text}",
    )
    return session_id


async def _history(
    client: httpx.AsyncClient,
    session_id: str,
    expect: Expect,
    what: str,
    status: int | None = None,
    holding: str | None = None,
    without: str | None = None,
) -> None:
    """The session's history as `client` reads it: answered `status` (any, when None), holding
    the text `holding` and not the text `without`."""
    response = await client.get(HISTORY.path(session_id=session_id))
    expect.that(
        (status is None or response.status_code == status)
        and (holding is None or holding in response.text)
        and (without is None or without not in response.text),
        what,
        f"{response.status_code} {response.text}",
    )


async def _title_unchanged(gateway: httpx.AsyncClient, title: str, expect: Expect, by: str) -> None:
    """The owner's list shows no session with the title another user tried to give it."""
    listed = await gateway.get(LIST_SESSIONS.path())
    expect.that(title not in listed.text, f"the title unchanged by {by}", listed.text)


def _listed(response: httpx.Response, session_id: str) -> bool:
    try:
        sessions = response.json().get("sessions", [])
        return any(item.get("session_id") == session_id for item in sessions)
    except (ValueError, AttributeError):
        return False


async def _socket_outcome(
    open_ws: SocketOpener,
    session_id: str,
    probe: str,
    *,
    as_user: str | None = None,
    token: str | None = None,
) -> tuple[int | None, str]:
    """How the gateway treats a user's socket: its close code, or a description of what happened.

    A message is sent at once rather than waiting for a close: a refusing gateway has closed by
    then (the close code arrives either way), and one that keeps the socket open shows by its
    answer whether it would serve the turn.
    """
    try:
        async with open_ws(session_id, as_user=as_user, token=token) as socket:
            await socket.send_json(user_message(probe))
            text = await socket.recv_text()
            return None, f"the socket stayed open and answered {text}"
    except SocketRefused as refused:
        return None, f"{refused}, no close code"
    except ConnectionClosed as closed:
        return _close_code(closed), f"close {_close_code(closed)}"
    except TimeoutError:
        return None, "the socket stayed open and answered nothing"


def _close_code(closed: ConnectionClosed) -> int | None:
    return closed.rcvd.code if closed.rcvd is not None else None


async def _turn_as(
    open_ws: SocketOpener,
    session_id: str,
    text: str,
    expect: Expect,
    named: str,
    *,
    as_user: str,
    token_in_query: bool = False,
) -> list[ServerFrame]:
    """One turn on a user's socket, as it came; a refused or closed socket fails `expect`."""
    try:
        async with open_ws(session_id, as_user=as_user, token_in_query=token_in_query) as socket:
            await socket.send_json(user_message(text))
            return await socket.turn()
    except SocketRefused as refused:
        expect.fail(f"{named} accepted", str(refused))
    except ConnectionClosed as closed:
        expect.fail(f"{named} open for a turn", f"close {_close_code(closed)}")
    raise AssertionError("unreachable: Expect.fail raises")


# X-AUTH-1


def _call(route: Route, body: Any = None, query: str = "", **values: str) -> tuple[str, str, Any]:
    """(method, path, JSON body) of one request."""
    return route.method, route.path(**values) + query, body


def _guarded_routes(
    session_id: str, reader: str, profiles: frozenset[str]
) -> list[tuple[str, str, Any]]:
    routes: list[tuple[str, str, Any]] = [
        _call(LIST_SESSIONS),
        _call(CREATE_SESSION),
        _call(HISTORY, session_id=session_id),
        _call(LIST_AGENTS),
        _call(CURRENT_AGENT, session_id=session_id),
    ]
    if "lifecycle" in profiles:
        routes += [
            _call(RENAME_SESSION, {"title": "renamed without a token"}, session_id=session_id),
            _call(DELETE_SESSION, session_id=session_id),
        ]
    if "export" in profiles:
        routes.append(_call(EXPORT, query="?format=json", session_id=session_id))
    if "search" in profiles:
        routes.append(_call(SEARCH, query="?q=session"))
    if "sharing" in profiles:
        routes += [
            _call(SHARE, {"user": reader}, session_id=session_id),
            _call(LIST_SHARES, session_id=session_id),
        ]
    return routes


@pytest.mark.req("X-AUTH-1")
@pytest.mark.parametrize("offered", ["missing", "wrong"], ids=["missing-token", "wrong-token"])
async def test_rest_calls_without_a_valid_token_are_refused_and_do_nothing(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    profiles: frozenset[str],
    run_id: str,
    offered: str,
) -> None:
    """X-AUTH-1: "With user auth on, every REST call ... needs Authorization: Bearer <token>".

    Without a token, and with a near miss of a valid one, every route of the selected profiles
    answers 401 with a string error (docs/decisions.md, Users and sharing), shows none of the
    session's content, and does nothing: the owner's sessions and history stay as they were.
    """
    owner, other = users.names(2)[:2]
    expect = Expect("X-AUTH-1")
    text = f"kept private {run_id}"
    session_id = await _session_with_text(gateway, open_ws, expect, text)
    before = (await gateway.get(LIST_SESSIONS.path())).json().get("total")
    # A near miss, so that a comparison of prefixes or lengths does not pass it.
    token = None if offered == "missing" else users.token(owner) + "x"
    async with users.client(token) as anonymous:
        for method, path, body in _guarded_routes(session_id, other, profiles):
            response = await anonymous.request(method, path, json=body)
            expect.that(
                response.status_code == 401,
                f"401 for {method} {path} with a {offered} token",
                f"{response.status_code} {response.text}",
                reproduce=f"curl -i -X {method} '{anonymous.base_url}{path}'",
            )
            expect_body(ErrorBody, response, expect, f"the 401 of {method} {path}")
            expect.that(text not in response.text, "no session content in a 401", response.text)
    after = (await gateway.get(LIST_SESSIONS.path())).json().get("total")
    expect.that(after == before, f"the owner's sessions unchanged ({before})", after)
    await _history(
        gateway,
        session_id,
        expect,
        "the session and its history untouched by the refused calls",
        200,
        holding=text,
    )


@pytest.mark.req("X-AUTH-1")
async def test_another_user_gets_404_for_a_session_and_never_its_content(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    profiles: frozenset[str],
    run_id: str,
) -> None:
    """X-AUTH-1: "a session belongs to its creator; another user gets 404 for it (never its
    content)".

    Another user's reads (and, under lifecycle, rename and delete) answer 404 without its content;
    that user's list and search leave it out; the owner's session stays as it was.
    """
    _, other = users.names(2)[:2]
    expect = Expect("X-AUTH-1")
    text = f"only for its owner {run_id}"
    session_id = await _session_with_text(gateway, open_ws, expect, text)
    listed = await gateway.get(LIST_SESSIONS.path())
    expect.that(_listed(listed, session_id), "the owner's list to show its session", listed.text)
    reads = [_call(HISTORY, session_id=session_id), _call(CURRENT_AGENT, session_id=session_id)]
    if "export" in profiles:
        reads += [_call(EXPORT, query="?format=json", session_id=session_id)]
    writes: list[tuple[str, str, Any]] = []
    if "lifecycle" in profiles:
        writes = [
            _call(RENAME_SESSION, {"title": f"taken {run_id}"}, session_id=session_id),
            _call(DELETE_SESSION, session_id=session_id),
        ]
    async with users.as_user(other) as client:
        for method, path, body in reads + writes:
            response = await client.request(method, path, json=body)
            expect.that(
                response.status_code == 404,
                f"404 for another user's {method} {path}",
                f"{response.status_code} {response.text}",
            )
            expect.that(text not in response.text, "none of the session's content", response.text)
        their_list = await client.get(LIST_SESSIONS.path())
        expect.that(
            their_list.status_code == 200 and not _listed(their_list, session_id),
            "another user's list to leave the session out",
            f"{their_list.status_code} {their_list.text}",
        )
        if "search" in profiles:
            found = await client.get(SEARCH.path(), params={"q": text})
            expect.that(
                session_id not in found.text and text not in found.text,
                "another user's search to find nothing of the session",
                f"{found.status_code} {found.text}",
            )
    await _history(
        gateway,
        session_id,
        expect,
        "the owner's session untouched by the other user's calls",
        200,
        holding=text,
    )
    await _title_unchanged(gateway, f"taken {run_id}", expect, "the other user")


@pytest.mark.req("X-AUTH-1")
async def test_socket_to_another_users_session_is_closed_with_4403(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    run_id: str,
) -> None:
    """X-AUTH-1: "another user gets ... a WebSocket refusal (close 4403)." Nothing that user sends
    is stored."""
    _, other = users.names(2)[:2]
    expect = Expect("X-AUTH-1")
    text = f"not for other sockets {run_id}"
    session_id = await _session_with_text(gateway, open_ws, expect, text)
    intruder = f"written by another user {run_id}"
    code, outcome = await _socket_outcome(open_ws, session_id, intruder, as_user=other)
    expect.that(code == OTHER_USERS_SESSION, "close 4403 for another user's session", outcome)
    await _history(
        gateway, session_id, expect, "nothing of the other user's in the history", without=intruder
    )


@pytest.mark.req("X-AUTH-1")
@pytest.mark.parametrize("offered", ["missing", "wrong"], ids=["missing-token", "wrong-token"])
async def test_socket_without_a_valid_token_is_closed_with_4401(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    run_id: str,
    offered: str,
) -> None:
    """X-AUTH-1: "every REST call and WebSocket needs Authorization: Bearer <token>". A socket
    without a valid token is closed with 4401 (docs/decisions.md, Users and sharing), and nothing it
    sends is stored."""
    owner = users.names(2)[0]
    expect = Expect("X-AUTH-1")
    session_id = await _session_with_text(gateway, open_ws, expect, f"mine {run_id}")
    token = "" if offered == "missing" else users.token(owner) + "x"
    intruder = f"written without a token {run_id}"
    code, outcome = await _socket_outcome(open_ws, session_id, intruder, token=token)
    expect.that(code == NO_TOKEN, f"close 4401 for a socket with a {offered} token", outcome)
    await _history(gateway, session_id, expect, "nothing written without a token", without=intruder)


@pytest.mark.req("X-AUTH-1")
async def test_socket_takes_the_token_as_a_query_parameter(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    run_id: str,
) -> None:
    """X-AUTH-1: "... needs Authorization: Bearer <token> (WebSocket: header or ?token=)". A socket
    with the token in ?token= alone chats, and its message lands in the owner's history."""
    owner = users.names(2)[0]
    expect = Expect("X-AUTH-1")
    session_id = await create_session(gateway)
    text = f"signed in by query {run_id}"
    named = "a socket opened with ?token="
    frames = await _turn_as(
        open_ws, session_id, text, expect, named, as_user=owner, token_in_query=True
    )
    expect.that(frames[-1].type != "error", f"the turn answered on {named}", dumped(frames))
    await _history(gateway, session_id, expect, "the message in the owner's history", holding=text)


# X-SHARE-1


async def _share(owner: httpx.AsyncClient, session_id: str, reader: str, expect: Expect) -> None:
    response = await owner.post(SHARE.path(session_id=session_id), json={"user": reader})
    expect.that(
        response.status_code == 201,
        f"201 for sharing with {reader}",
        f"{response.status_code} {response.text}",
    )
    body = json_object(response, expect, "the share")
    expect.that(
        body.get("session_id") == session_id and reader in (body.get("shared_with") or []),
        f'{{"session_id": "{session_id}", "shared_with": [..., "{reader}", ...]}}',
        body,
    )
    listed = await owner.get(LIST_SHARES.path(session_id=session_id))
    expect.that(
        listed.status_code == 200 and reader in (listed.json().get("shared_with") or []),
        f"the owner's GET shares to list {reader}",
        f"{listed.status_code} {listed.text}",
    )


def _not_private(who: str, what: str) -> None:
    """Another user reaches the session before any share: X-AUTH-1 fails there, and what a share
    changes cannot be judged on top of it, so this requirement is not failed for it too."""
    pytest.skip(f"{who} {what} before any share: X-AUTH-1's failure, not sharing's")


async def _refused_before_sharing(client: httpx.AsyncClient, session_id: str, who: str) -> None:
    response = await client.get(HISTORY.path(session_id=session_id))
    if response.status_code != 404:
        _not_private(who, f"reads the history ({response.status_code})")


@pytest.mark.req("X-SHARE-1")
async def test_owner_shares_a_session_and_the_reader_reads_it(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    run_id: str,
) -> None:
    """X-SHARE-1: "The owner can share a session with another user (read-only); the other user can
    read its history". The share, POST /sessions/{id}/shares, answers 201 naming the reader and the
    owner's GET shares lists it (docs/decisions.md, Users and sharing); the reader reads the history
    and lists the session."""
    _, reader = users.names(2)[:2]
    expect = Expect("X-SHARE-1")
    text = f"shared to read {run_id}"
    session_id = await _session_with_text(gateway, open_ws, expect, text)
    await _share(gateway, session_id, reader, expect)
    async with users.as_user(reader) as client:
        await _history(
            client,
            session_id,
            expect,
            f"the reader to read the history, with {text!r}",
            200,
            holding=text,
        )
        listed = await client.get(LIST_SESSIONS.path())
        expect.that(_listed(listed, session_id), "the reader's list to show it", listed.text)


@pytest.mark.req("X-SHARE-1")
async def test_reader_cannot_post_to_a_shared_session(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    run_id: str,
) -> None:
    """X-SHARE-1: "the other user can read its history but not post to it." The reader's socket is
    accepted read-only: its user_message gets an error frame and is not stored (docs/decisions.md,
    Users and sharing)."""
    _, reader = users.names(2)[:2]
    expect = Expect("X-SHARE-1")
    session_id = await _session_with_text(gateway, open_ws, expect, f"read only {run_id}")
    await _share(gateway, session_id, reader, expect)
    posted = f"posted by the reader {run_id}"
    frames = await _turn_as(
        open_ws, session_id, posted, expect, "the reader's socket, read-only", as_user=reader
    )
    expect.that(
        frames[-1].type == "error", "an error frame for the reader's user_message", dumped(frames)
    )
    await _history(gateway, session_id, expect, "the reader's message not stored", without=posted)


@pytest.mark.req("X-SHARE-1")
async def test_reader_cannot_rename_delete_or_reshare(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    profiles: frozenset[str],
    run_id: str,
) -> None:
    """X-SHARE-1: "The owner can share a session with another user (read-only)". Read-only: the
    reader's share onward, rename and delete answer 403 (any 4xx without profile lifecycle, whose
    routes may not exist) and change nothing (docs/decisions.md, Users and sharing)."""
    names = users.names(2)
    owner, reader = names[:2]
    expect = Expect("X-SHARE-1")
    text = f"not the reader's to change {run_id}"
    session_id = await _session_with_text(gateway, open_ws, expect, text)
    await _share(gateway, session_id, reader, expect)
    onward = names[2] if len(names) > 2 else owner
    attempts: list[tuple[str, str, Any]] = [
        _call(SHARE, {"user": onward}, session_id=session_id),
    ]
    # Without the lifecycle routes a target may answer 404 or 405; only a 403 proves the rule.
    lifecycle = "lifecycle" in profiles
    attempts += [
        _call(RENAME_SESSION, {"title": f"renamed by the reader {run_id}"}, session_id=session_id),
        _call(DELETE_SESSION, session_id=session_id),
    ]
    async with users.as_user(reader) as client:
        for method, path, body in attempts:
            response = await client.request(method, path, json=body)
            strict = lifecycle or path.endswith("/shares")
            good = response.status_code == 403 if strict else 400 <= response.status_code < 500
            expect.that(
                good,
                f"403 for the reader's {method} {path}"
                if strict
                else f"a 4xx for the reader's {method} {path}",
                f"{response.status_code} {response.text}",
            )
    await _history(gateway, session_id, expect, "the session kept by its owner", 200, holding=text)
    shares = await gateway.get(LIST_SHARES.path(session_id=session_id))
    expect.that(
        onward == owner or onward not in (shares.json().get("shared_with") or []),
        f"no share to {onward} made by the reader",
        shares.text,
    )
    await _title_unchanged(gateway, f"renamed by the reader {run_id}", expect, "the reader")


@pytest.mark.req("X-SHARE-1")
async def test_only_the_owner_can_share(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    run_id: str,
) -> None:
    """X-SHARE-1: "The owner can share a session with another user". The owner alone: another user's
    share answers 404 and opens nothing. Skipped when that user reads the session before any share:
    X-AUTH-1's failure."""
    _, other = users.names(2)[:2]
    expect = Expect("X-SHARE-1")
    text = f"not shareable by others {run_id}"
    session_id = await _session_with_text(gateway, open_ws, expect, text)
    async with users.as_user(other) as client:
        await _refused_before_sharing(client, session_id, "another user")
        response = await client.post(SHARE.path(session_id=session_id), json={"user": other})
        expect.that(
            response.status_code == 404,
            "404 for another user sharing the session with itself",
            f"{response.status_code} {response.text}",
        )
        await _history(
            client, session_id, expect, "the session still hidden from that user", 404, without=text
        )


@pytest.mark.req("X-SHARE-1")
async def test_a_share_opens_the_session_to_the_reader_alone(
    users: Users,
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    run_id: str,
) -> None:
    """X-SHARE-1: "The owner can share a session with another user (read-only)": with that user
    alone. A third user still gets 404 for the history and the shares, no list entry, and close
    4403 on a socket. Skipped when the third user was not refused before the share: X-AUTH-1's
    failure."""
    _, reader, bystander = users.names(3)[:3]
    expect = Expect("X-SHARE-1")
    text = f"for one reader only {run_id}"
    session_id = await _session_with_text(gateway, open_ws, expect, text)
    async with users.as_user(bystander) as client:
        await _refused_before_sharing(client, session_id, "a third user")
        code, outcome = await _socket_outcome(
            open_ws, session_id, f"early {run_id}", as_user=bystander
        )
        if code != OTHER_USERS_SESSION:
            _not_private("a third user", f"gets {outcome} on a socket")
        await _share(gateway, session_id, reader, expect)
        await _history(
            client,
            session_id,
            expect,
            "404 for a third user's history after the share",
            404,
            without=text,
        )
        listed = await client.get(LIST_SESSIONS.path())
        expect.that(not _listed(listed, session_id), "a third user's list without it", listed.text)
        shares = await client.get(LIST_SHARES.path(session_id=session_id))
        expect.that(
            shares.status_code == 404,
            "404 for a third user's GET shares",
            f"{shares.status_code} {shares.text}",
        )
    written = f"written by a third user {run_id}"
    code, outcome = await _socket_outcome(open_ws, session_id, written, as_user=bystander)
    expect.that(code == OTHER_USERS_SESSION, "close 4403 for a third user's socket", outcome)
