"""Before any check: is every part the run will use there, and does it take the keys it was given?

A runtime that is down or a key that is refused is the set-up of the target or of the tester, not a
requirement the target fails: the run stops with one sentence saying which part and why, instead of
forty checks failing with the same connection error. Only the right key being refused stops it; a
key that is accepted when it should not be (a target that never checks keys) is what the auth
checks are for, so nothing here sends a wrong key.
"""

import httpx

from conformance.probes import TEST_HEADER
from conformance.targets import Endpoints
from contract.routes import HEALTH, LIST_SESSIONS

REFUSED = (401, 403)
# A gateway's answer that says its runtime is not there (section G-DOWN of the contract).
UNREACHABLE = (502, 503, 504)
# Any authenticated route does; the list is in every profile and does no work.
ROUTE = LIST_SESSIONS.path()
MARK = {TEST_HEADER: "pre-flight"}


class PreflightFailure(Exception):
    """The sentence that stops the run."""


def preflight(endpoints: Endpoints, timeout: float) -> str | None:
    """Why the run cannot start, in one sentence; None when every part answers as set up."""
    try:
        with httpx.Client(timeout=timeout, trust_env=False, headers=MARK) as client:
            _check(client, endpoints)
    except PreflightFailure as stop:
        return str(stop)
    return None


def _check(client: httpx.Client, endpoints: Endpoints) -> None:
    gateway, runtime = endpoints.gateway_url, endpoints.runtime_url
    _get(client, "gateway", gateway, HEALTH.path(), {})
    if runtime is not None:
        _get(client, "runtime", runtime, HEALTH.path(), {})
        answer = _get(client, "runtime", runtime, ROUTE, endpoints.runtime_headers())
        if answer.status_code in REFUSED:
            if endpoints.internal_key:
                raise PreflightFailure(
                    f"the runtime at {runtime} refused the internal key "
                    f"({answer.status_code} to GET {ROUTE})"
                )
            raise PreflightFailure(
                f"the runtime at {runtime} answered {answer.status_code} to GET {ROUTE} without a "
                "key: give its internal key (--internal-key or the target file)"
            )
    answer = _get(client, "gateway", gateway, ROUTE, endpoints.client_headers())
    if answer.status_code in REFUSED:
        raise PreflightFailure(_gateway_refusal(endpoints, answer.status_code))
    if answer.status_code in UNREACHABLE:
        raise PreflightFailure(
            f"the gateway at {gateway} answered {answer.status_code} to GET {ROUTE}: its runtime "
            "is not reachable from it (is the runtime up, and the gateway's runtime URL right?)"
        )


def _gateway_refusal(endpoints: Endpoints, status: int) -> str:
    where = f"the gateway at {endpoints.gateway_url}"
    credentials = [
        name
        for name, given in (
            ("the client key", endpoints.client_key),
            ("the user token", endpoints.user_tokens),
        )
        if given
    ]
    if not credentials:
        return (
            f"{where} answered {status} to GET {ROUTE} without a key: give its client key "
            "(--client-key or the target file)"
        )
    # The gateway passes the runtime's answer on: a runtime refusing the gateway's own key
    # looks the same from here.
    return (
        f"{where} refused {' or '.join(credentials)} ({status} to GET {ROUTE}), or its runtime "
        "refused the gateway's internal key"
    )


def _get(
    client: httpx.Client, party: str, base: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    url = f"{base}{path}"
    try:
        return client.get(url, headers=headers)
    except httpx.TimeoutException:
        raise PreflightFailure(
            f"the {party} at {base} did not answer GET {path} within {client.timeout.read:g} s"
        ) from None
    except httpx.TransportError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PreflightFailure(
            f"the {party} at {base} is not reachable: GET {url} found no connection ({reason})"
        ) from None
