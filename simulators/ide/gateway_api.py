"""GatewayApi: the HTTP client of the gateway's REST routes, nothing more."""

from typing import Any
from urllib.parse import quote

import httpx

from simulators.ide.settings import IdeSettings
from simulators.ide.trace import Trace


class GatewayApi:
    def __init__(self, settings: IdeSettings, trace: Trace) -> None:
        self.trace = trace

        async def on_response(response: httpx.Response) -> None:
            await response.aread()
            request = response.request
            answer = f"{response.status_code} {response.text[:300]}"
            trace.traffic(f"{request.method} {request.url.path} -> {answer}")

        self.client = httpx.AsyncClient(
            base_url=settings.gateway_url.rstrip("/"),
            headers=settings.rest_headers,
            timeout=httpx.Timeout(
                settings.scaled(settings.request_timeout),
                connect=settings.scaled(settings.connect_timeout),
            ),
            trust_env=False,
            event_hooks={"response": [on_response]},
        )

    async def create_session(self) -> httpx.Response:
        return await self.client.post("/sessions")

    async def list_sessions(self) -> httpx.Response:
        return await self.client.get("/sessions")

    async def get_history(self, session_id: str) -> httpx.Response:
        return await self.client.get(f"/sessions/{quote(session_id, safe='')}/history")

    async def agents(self) -> httpx.Response:
        return await self.client.get("/agents")

    async def current_agent(self, session_id: str) -> httpx.Response:
        return await self.client.get(f"/agents/{quote(session_id, safe='')}/current")

    async def close(self) -> None:
        await self.client.aclose()


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
