"""G-: the gateway's REST surface — proxying, keys, errors, health, an unreachable runtime."""

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest
from websockets.exceptions import InvalidHandshake

from conformance.failures import Expect
from conformance.outcomes import describe_refusal
from conformance.plugin import deadline
from conformance.probes import NoFrame, SocketClosed, http_probe, open_socket
from conformance.target_runner import TargetRunner
from conformance.targets import Capability
from conformance.transcript import Transcript
from contract.bodies import ErrorBody, Health
from contract.routes import (
    CREATE_SESSION,
    CURRENT_AGENT,
    HEALTH,
    HISTORY,
    LIST_AGENTS,
    LIST_SESSIONS,
    SOCKET,
)

from .support import create_session, expect_body, session_path

pytestmark = pytest.mark.asyncio

# G-PROXY-1's routes.
ROUTES = (CREATE_SESSION, LIST_SESSIONS, HISTORY, LIST_AGENTS, CURRENT_AGENT)
UNKNOWN = "session_0000000000000000"


def _shape(body: object) -> object:
    """What must be equal between the two answers: everything but per-call values."""
    volatile = {"session_id", "created_at", "last_activity", "sessions", "total"}
    if isinstance(body, dict):
        return {key: _shape(value) for key, value in body.items() if key not in volatile}
    if isinstance(body, list):
        return [_shape(item) for item in body]
    return body


def _body(response: httpx.Response) -> object:
    """The JSON body, or the text when it is not JSON (compared as such)."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text


@pytest.mark.req("G-HEALTH-1")
async def test_gateway_health_answers(gateway: httpx.AsyncClient) -> None:
    """G-HEALTH-1: "GET /health -> 200 {"status": "healthy", "service": str, "version": str}"."""
    expect = Expect("G-HEALTH-1")
    response = await gateway.get(HEALTH.path())
    expect.that(response.status_code == 200, "200", f"{response.status_code} {response.text}")
    expect_body(Health, response, expect, HEALTH.template)


@pytest.mark.req("G-PROXY-1")
async def test_gateway_answers_what_the_runtime_answers(
    gateway: httpx.AsyncClient, runtime: httpx.AsyncClient
) -> None:
    """G-PROXY-1: "POST /sessions, GET /sessions, GET /sessions/{id}/history, GET /agents, GET
    /agents/{id}/current answer what the runtime answers (status and body), for any id the runtime
    accepts." Each route asked of both, with a known and an unknown id. Bodies are compared for
    answers below 400, without their per-call values (ids, timestamps, the list and its total);
    an error's body is G-ERR-1's."""
    expect = Expect("G-PROXY-1")
    session_id = await create_session(gateway)
    for route in ROUTES:
        method = route.method
        for known in (session_id, UNKNOWN) if route.params else (session_id,):
            path = session_path(route, known)
            direct = await runtime.request(method, path)
            proxied = await gateway.request(method, path)
            expect.that(
                proxied.status_code == direct.status_code,
                f"{method} {path}: the runtime's status {direct.status_code}",
                f"{proxied.status_code} {proxied.text}",
            )
            if direct.status_code < 400:
                expect.that(
                    _shape(_body(proxied)) == _shape(_body(direct)),
                    f"{method} {path}: the runtime's body {direct.text}",
                    proxied.text,
                )


@pytest.mark.req("G-PROXY-1")
async def test_gateway_passes_odd_ids_on_as_the_runtime_answers(
    gateway: httpx.AsyncClient, runtime: httpx.AsyncClient
) -> None:
    """G-PROXY-1: "... answer what the runtime answers (status and body), for any id the runtime
    accepts." Judged against what the runtime itself answered for the same path: a runtime that
    errs on an odd id fails R-HIST-2, not the gateway that passes its answer on."""
    expect = Expect("G-PROXY-1")
    for odd in ("сессия-😀", "x" * 1000, "..%2F..", "a'b\"c", " "):
        path = HISTORY.raw_path(session_id=quote(odd, safe="%"))
        direct = await runtime.get(path)
        proxied = await gateway.get(path)
        expect.that(
            proxied.status_code == direct.status_code,
            f"the runtime's status {direct.status_code} for the history of {odd[:40]!r}",
            f"{proxied.status_code} {proxied.text[:300]}",
        )


@pytest.mark.req("G-PROXY-2")
async def test_clients_need_no_internal_key_and_never_see_it(gateway: httpx.AsyncClient) -> None:
    """G-PROXY-2: "The gateway adds the internal key itself; a client never needs it. The internal
    key never appears in any gateway response."

    The probe carries what a client has (the client key at most). "Never needs it": no route
    refuses it for want of a key (401/403); what else a route answers is G-PROXY-1's. "Never
    appears": every gateway answer of the whole run is scanned by the probes (a leak found in any
    check fails this requirement); here a few answers that tempt a gateway to reveal it.
    """
    expect = Expect("G-PROXY-2")
    session_id = await create_session(gateway)
    for route in ROUTES:
        response = await gateway.request(route.method, session_path(route, session_id))
        expect.that(
            response.status_code not in (401, 403),
            f"{route} to work without the internal key",
            f"{response.status_code} {response.text[:300]}",
        )
    await gateway.get(HISTORY.path(session_id=UNKNOWN))
    await gateway.get("/no-such-route")
    await gateway.get(LIST_SESSIONS.path(), headers={"X-Internal-Auth": "wrong"})


@pytest.mark.req("G-AUTH-1")
async def test_rest_needs_the_client_key_and_sockets_do_not(
    gateway: httpx.AsyncClient, sessionlab_target: TargetRunner, transcript: Transcript
) -> None:
    """G-AUTH-1: "When a client key is configured: REST paths other than /health and the docs
    answer 401 without the right X-Internal-Auth; /ws/* needs no key."

    A wrong key is one that is neither the client key nor the internal key: in the described
    system both are the same value, and a gateway may accept either (docs/decisions.md).
    """
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    if not endpoints.client_key:
        pytest.skip("the target names no client key: its gateway is open")
    expect = Expect("G-AUTH-1")
    session_id = await create_session(gateway)
    wrong = f"wrong-{secrets.token_hex(8)}"
    for offered in (None, wrong):
        headers = {"X-Internal-Auth": offered} if offered else {}
        gateway.headers.pop("X-Internal-Auth", None)
        for route in ROUTES:
            response = await gateway.request(
                route.method, session_path(route, session_id), headers=headers
            )
            expect.that(
                response.status_code == 401,
                f"401 for {route} with {'no' if offered is None else 'a wrong'} key",
                f"{response.status_code} {response.text[:300]}",
            )
    health = await gateway.get(HEALTH.path())
    expect.that(health.status_code == 200, "/health without a key", health.status_code)
    url = endpoints.ws_url + SOCKET.path(session_id=session_id)
    try:
        async with open_socket(endpoints.ws_url, session_id, transcript, deadline(10)) as socket:
            # Accepted is not enough if the gateway closes at once for want of a key.
            with contextlib.suppress(NoFrame):
                await socket.recv_text(timeout=deadline(0.5))
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        expect.fail(f"a WebSocket on {url} without any key", describe_refusal(exc, url, 10))
    except SocketClosed as closed:
        expect.fail(f"a WebSocket on {url} without any key to stay open", str(closed))


@pytest.mark.req("G-ERR-1")
async def test_runtime_errors_keep_their_status_with_an_error_string(
    gateway: httpx.AsyncClient, sessionlab_target: TargetRunner, partial: Callable[[str], None]
) -> None:
    """G-ERR-1: "A runtime error status N is passed on as status N with a JSON object carrying a
    string error." N is what the runtime answered for the same request, when its URL is known."""
    expect = Expect("G-ERR-1")
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    requests = [
        (HISTORY.method, HISTORY.path(session_id=UNKNOWN), None),
        (CURRENT_AGENT.method, CURRENT_AGENT.path(session_id=UNKNOWN), None),
        (CREATE_SESSION.method, CREATE_SESSION.path(), b"[1, 2]"),
    ]
    if endpoints.runtime_url is None:
        partial(
            "the gateway's error statuses were not compared with the runtime's: no runtime URL "
            "(give --runtime-url or a target file naming the runtime)"
        )
    async with http_probe(
        endpoints.runtime_url or endpoints.gateway_url,
        Transcript(),
        endpoints.runtime_headers() if endpoints.runtime_url else endpoints.client_headers(),
        deadline(15),
        "runtime" if endpoints.runtime_url else "gateway",
        endpoints.internal_key,
    ) as runtime:
        for method, path, body in requests:
            headers = {"Content-Type": "application/json"} if body else {}
            proxied = await gateway.request(method, path, content=body, headers=headers)
            if endpoints.runtime_url is not None:
                direct = await runtime.request(method, path, content=body, headers=headers)
                if direct.status_code < 400:
                    continue
                expect.that(
                    proxied.status_code == direct.status_code,
                    f"the runtime's status {direct.status_code} for {method} {path}",
                    f"{proxied.status_code} {proxied.text[:300]}",
                )
            elif proxied.status_code < 400:
                continue
            expect_body(ErrorBody, proxied, expect, f"the {proxied.status_code} of {method} {path}")


async def _runtime_down_answers(gateway: httpx.AsyncClient, expect: Expect) -> list[int]:
    statuses = []
    for route in ROUTES:
        started = time.perf_counter()
        try:
            response = await gateway.request(route.method, session_path(route, UNKNOWN), timeout=12)
        except httpx.TimeoutException:
            expect.fail(f"{route} to answer within 10 s", "no answer in 12 s")
        elapsed = time.perf_counter() - started
        expect.that(elapsed <= 10, f"{route} to answer within 10 s", f"{elapsed:.1f} s")
        expect.that(
            500 <= response.status_code < 600,
            f"a 5xx for {route} with the runtime down",
            f"{response.status_code} {response.text}",
        )
        expect_body(ErrorBody, response, expect, f"{route} with the runtime down")
        statuses.append(response.status_code)
    return statuses


async def _with_runtime_down(
    gateway: httpx.AsyncClient, target: TargetRunner, expect: Expect
) -> list[int]:
    if not target.supports("runtime", Capability.STOP):
        pytest.skip("the target offers no control of its runtime (stop/start)")
    await target.stop_service("runtime")
    try:
        statuses = await _runtime_down_answers(gateway, expect)
        health = await gateway.get(HEALTH.path())
        expect.that(
            health.status_code == 200, "the gateway to keep serving /health", health.status_code
        )
    finally:
        await target.start_service("runtime")
    recovered = 0
    try:
        async with asyncio.timeout(deadline(15)):
            while recovered != 200:
                recovered = (await gateway.get(LIST_SESSIONS.path())).status_code
                if recovered != 200:
                    await asyncio.sleep(0.2)
    except TimeoutError:
        expect.fail("the gateway to recover once the runtime is back", f"still {recovered}")
    return statuses


@pytest.mark.req("G-DOWN-1")
async def test_gateway_answers_5xx_quickly_while_the_runtime_is_down_and_recovers(
    gateway: httpx.AsyncClient, sessionlab_target: TargetRunner
) -> None:
    """G-DOWN-1: "With the runtime unreachable, every REST path answers a 5xx JSON object with a
    string error within 10 s; the gateway keeps serving and recovers by itself when the runtime
    returns." The routes of G-PROXY-1; keeps serving: /health answers 200 meanwhile; recovers:
    GET /sessions answers 200 within 15 s of the runtime's return (docs/decisions.md)."""
    await _with_runtime_down(gateway, sessionlab_target, Expect("G-DOWN-1"))


@pytest.mark.req("G-DOWN-2")
async def test_the_runtime_down_answer_is_502_or_503(
    gateway: httpx.AsyncClient, sessionlab_target: TargetRunner
) -> None:
    """G-DOWN-2 (SHOULD): "That 5xx is 502 or 503". Judged on statuses alone: the body and timing
    belong to G-DOWN-1."""
    statuses: list[int] = []
    if not sessionlab_target.supports("runtime", Capability.STOP):
        pytest.skip("the target offers no control of its runtime (stop/start)")
    await sessionlab_target.stop_service("runtime")
    try:
        for route in ROUTES:
            response = await gateway.request(route.method, session_path(route, UNKNOWN), timeout=12)
            statuses.append(response.status_code)
    finally:
        await sessionlab_target.start_service("runtime")
    Expect("G-DOWN-2").that(
        all(status in (502, 503) for status in statuses),
        "502 or 503 while the runtime is down",
        statuses,
    )
