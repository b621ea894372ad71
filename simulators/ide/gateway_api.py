"""GatewayApi: the HTTP client of the gateway's REST routes, nothing more."""

import functools
import ssl
from typing import Any

import httpx

from contract.routes import CREATE_SESSION, CURRENT_AGENT, HISTORY, LIST_AGENTS, LIST_SESSIONS
from simulators.ide.rest_policy import RestPolicy
from simulators.ide.settings import IdeSettings
from simulators.ide.trace import Trace


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context, built once per process: building it reads the whole CA bundle
    (tens of ms of CPU), which a load run creating thousands of IDEs would otherwise pay for each
    one, http:// gateways included (it was half of the load generator's CPU)."""
    return httpx.create_ssl_context(trust_env=False)


class GatewayApi:
    def __init__(self, settings: IdeSettings, trace: Trace, policy: RestPolicy) -> None:
        self.trace = trace
        self.policy = policy

        async def on_response(response: httpx.Response) -> None:
            await response.aread()
            request = response.request
            answer = f"{response.status_code} {response.text[:300]}"
            trace.traffic(f"{request.method} {request.url.raw_path.decode()} -> {answer}")

        request_timeout, connect_timeout = policy.timeouts(settings)
        self.client = httpx.AsyncClient(
            base_url=settings.gateway_url.rstrip("/"),
            headers=policy.headers(settings),
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            trust_env=False,
            verify=_tls(),
            event_hooks={"response": [on_response]},
        )

    async def create_session(self) -> httpx.Response:
        # No body at all, as both clients send it (R-CREATE-1 allows none).
        return await self.client.post(CREATE_SESSION.path())

    async def list_sessions(self) -> httpx.Response:
        return await self.client.get(LIST_SESSIONS.path())

    async def get_history(self, session_id: str) -> httpx.Response:
        path = HISTORY.raw_path(session_id=self.policy.path_id(session_id))
        return await self.client.get(path)

    async def agents(self) -> httpx.Response:
        return await self.client.get(LIST_AGENTS.path())

    async def current_agent(self, session_id: str) -> httpx.Response:
        path = CURRENT_AGENT.raw_path(session_id=self.policy.path_id(session_id))
        return await self.client.get(path)

    async def close(self) -> None:
        await self.client.aclose()


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
