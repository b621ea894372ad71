"""G-: the gateway's REST surface — proxying, keys, errors, health, an unreachable runtime."""

import asyncio
import time
from urllib.parse import quote

import httpx
import pytest

from conformance.failures import Expect
from conformance.plugin import deadline
from conformance.probes import open_socket
from conformance.target_runner import TargetRunner
from conformance.targets import Capability
from conformance.transcript import Transcript

from .support import create_session, json_object

pytestmark = pytest.mark.asyncio

ROUTES = [
    ("POST", "/sessions"),
    ("GET", "/sessions"),
    ("GET", "/sessions/{id}/history"),
    ("GET", "/agents"),
    ("GET", "/agents/{id}/current"),
]
UNKNOWN = "session_0000000000000000"


def _shape(body: object) -> object:
    """What must be equal between the two answers: everything but per-call values."""
    volatile = {"session_id", "created_at", "last_activity", "sessions", "total"}
    if isinstance(body, dict):
        return {key: _shape(value) for key, value in body.items() if key not in volatile}
    if isinstance(body, list):
        return [_shape(item) for item in body]
    return body


@pytest.mark.req("G-HEALTH-1")
async def test_gateway_health_answers(gateway: httpx.AsyncClient) -> None:
    expect = Expect("G-HEALTH-1")
    response = await gateway.get("/health")
    expect.that(response.status_code == 200, "200", f"{response.status_code} {response.text}")
    body = json_object(response, expect, "/health")
    expect.that(body.get("status") == "healthy", 'status "healthy"', body)
    expect.that(
        isinstance(body.get("service"), str) and isinstance(body.get("version"), str),
        "string service and version",
        body,
    )


@pytest.mark.req("G-PROXY-1")
async def test_gateway_answers_what_the_runtime_answers(
    gateway: httpx.AsyncClient, runtime: httpx.AsyncClient
) -> None:
    expect = Expect("G-PROXY-1")
    session_id = await create_session(gateway, expect)
    for method, template in ROUTES:
        for known in (session_id, UNKNOWN) if "{id}" in template else (None,):
            path = template.format(id=known)
            direct = await runtime.request(method, path)
            proxied = await gateway.request(method, path)
            expect.that(
                proxied.status_code == direct.status_code,
                f"{method} {path}: the runtime's status {direct.status_code}",
                f"{proxied.status_code} {proxied.text}",
            )
            if direct.status_code < 400:
                expect.that(
                    _shape(proxied.json()) == _shape(direct.json()),
                    f"{method} {path}: the runtime's body {direct.text}",
                    proxied.text,
                )


@pytest.mark.req("G-PROXY-1")
async def test_gateway_passes_odd_ids_on_without_a_5xx(gateway: httpx.AsyncClient) -> None:
    expect = Expect("G-PROXY-1")
    for odd in ("сессия-😀", "x" * 1000, "..%2F..", "a'b\"c", " "):
        path = f"/sessions/{quote(odd, safe='%')}/history"
        response = await gateway.get(path)
        expect.that(
            response.status_code in (404, 422),
            f"404 or 422 for history of {odd[:40]!r}, as the runtime answers",
            f"{response.status_code} {response.text}",
        )


@pytest.mark.req("G-PROXY-2")
async def test_clients_need_no_internal_key_and_never_see_it(
    gateway: httpx.AsyncClient, sessionlab_target: TargetRunner
) -> None:
    expect = Expect("G-PROXY-2")
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    # The probe carries what a client has: the client key at most, never the internal one.
    session_id = await create_session(gateway, expect)
    bodies = []
    for method, template in ROUTES:
        response = await gateway.request(method, template.format(id=session_id))
        expect.that(
            response.status_code < 400,
            f"{method} {template} to work without the internal key",
            f"{response.status_code} {response.text}",
        )
        bodies.append(response.text)
    bodies.append((await gateway.get(f"/sessions/{UNKNOWN}/history")).text)
    bodies.append((await gateway.get("/no-such-route")).text)
    bodies.append((await gateway.get("/sessions", headers={"X-Internal-Auth": "wrong"})).text)
    key = endpoints.internal_key
    if key:
        leaked = [body for body in bodies if key in body]
        expect.that(not leaked, "no gateway answer carrying the internal key", f"{len(leaked)} did")


@pytest.mark.req("G-AUTH-1")
async def test_rest_needs_the_client_key_and_sockets_do_not(
    gateway: httpx.AsyncClient, sessionlab_target: TargetRunner, transcript: Transcript
) -> None:
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    if not endpoints.client_key:
        pytest.skip("the target names no client key: its gateway is open")
    expect = Expect("G-AUTH-1")
    session_id = await create_session(gateway, expect)
    for offered in (None, "wrong", endpoints.internal_key):
        headers = {"X-Internal-Auth": offered} if offered else {}
        gateway.headers.pop("X-Internal-Auth", None)
        for method, template in ROUTES:
            response = await gateway.request(
                method, template.format(id=session_id), headers=headers
            )
            expect.that(
                response.status_code == 401,
                f"401 for {method} {template} with {'no' if offered is None else 'a wrong'} key",
                f"{response.status_code} {response.text}",
            )
    health = await gateway.get("/health")
    expect.that(health.status_code == 200, "/health without a key", health.status_code)
    async with open_socket(
        endpoints.ws_url, session_id, transcript, deadline(10), endpoints.socket_headers()
    ) as socket:
        await socket.send_json({"type": "user_message", "content": "no key", "role": "user"})
        frames = await socket.turn()
        expect.that(bool(frames), "a socket without any key to work", frames)


@pytest.mark.req("G-ERR-1")
async def test_runtime_errors_keep_their_status_with_an_error_string(
    gateway: httpx.AsyncClient,
) -> None:
    expect = Expect("G-ERR-1")
    for path in (f"/sessions/{UNKNOWN}/history", f"/agents/{UNKNOWN}/current"):
        response = await gateway.get(path)
        expect.that(
            response.status_code == 404, f"the runtime's 404 for {path}", response.status_code
        )
        body = json_object(response, expect, path)
        expect.that(isinstance(body.get("error"), str), "a string `error`", body)
    bad = await gateway.post(
        "/sessions", content=b"[1, 2]", headers={"Content-Type": "application/json"}
    )
    if bad.status_code >= 400:
        body = json_object(bad, expect, "POST /sessions with a non-object body")
        expect.that(bad.status_code < 500, "a 4xx for a bad body, not a 5xx", bad.status_code)
        expect.that(isinstance(body.get("error"), str), "a string `error`", body)


async def _runtime_down_answers(gateway: httpx.AsyncClient, expect: Expect) -> list[int]:
    statuses = []
    for method, template in ROUTES:
        started = time.perf_counter()
        try:
            response = await gateway.request(method, template.format(id=UNKNOWN), timeout=12)
        except httpx.TimeoutException:
            expect.fail(f"{method} {template} to answer within 10 s", "no answer in 12 s")
        elapsed = time.perf_counter() - started
        expect.that(elapsed <= 10, f"{method} {template} to answer within 10 s", f"{elapsed:.1f} s")
        expect.that(
            500 <= response.status_code < 600,
            f"a 5xx for {method} {template} with the runtime down",
            f"{response.status_code} {response.text}",
        )
        body = json_object(response, expect, f"{method} {template} with the runtime down")
        expect.that(isinstance(body.get("error"), str), "a string `error`", body)
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
        health = await gateway.get("/health")
        expect.that(
            health.status_code == 200, "the gateway to keep serving /health", health.status_code
        )
    finally:
        await target.start_service("runtime")
    recovered = 0
    try:
        async with asyncio.timeout(deadline(15)):
            while recovered != 200:
                recovered = (await gateway.get("/sessions")).status_code
                if recovered != 200:
                    await asyncio.sleep(0.2)
    except TimeoutError:
        expect.fail("the gateway to recover once the runtime is back", f"still {recovered}")
    return statuses


@pytest.mark.req("G-DOWN-1")
async def test_gateway_answers_5xx_quickly_while_the_runtime_is_down_and_recovers(
    gateway: httpx.AsyncClient, sessionlab_target: TargetRunner
) -> None:
    await _with_runtime_down(gateway, sessionlab_target, Expect("G-DOWN-1"))


@pytest.mark.req("G-DOWN-2")
async def test_the_runtime_down_answer_is_502_or_503(
    gateway: httpx.AsyncClient, sessionlab_target: TargetRunner
) -> None:
    # Judged on statuses alone: the body and timing belong to G-DOWN-1.
    statuses: list[int] = []
    if not sessionlab_target.supports("runtime", Capability.STOP):
        pytest.skip("the target offers no control of its runtime (stop/start)")
    await sessionlab_target.stop_service("runtime")
    try:
        for method, template in ROUTES:
            response = await gateway.request(method, template.format(id=UNKNOWN), timeout=12)
            statuses.append(response.status_code)
    finally:
        await sessionlab_target.start_service("runtime")
    Expect("G-DOWN-2").that(
        all(status in (502, 503) for status in statuses),
        "502 or 503 while the runtime is down",
        statuses,
    )
