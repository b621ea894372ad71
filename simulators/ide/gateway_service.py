"""GatewayService: the API's answers as typed results, its failures as typed errors."""

from collections.abc import Awaitable
from typing import Any

import httpx
from pydantic import ValidationError

from contract.bodies import History, SessionList
from simulators.ide.gateway_api import GatewayApi, json_body


class GatewayError(Exception):
    """The gateway could not be reached, or answered what the IDE cannot use."""


class SessionNotFound(GatewayError):
    """The gateway answered 404 for a session."""


class GatewayService:
    def __init__(self, api: GatewayApi) -> None:
        self.api = api

    async def _call(self, request: Awaitable[httpx.Response]) -> httpx.Response:
        try:
            response = await request
        except httpx.HTTPError as exc:
            raise GatewayError(f"{type(exc).__name__}: {exc or 'no answer'}") from exc
        return response

    async def create_session(self) -> dict[str, Any]:
        """The answer's body; its `session_id` is a string."""
        response = await self._call(self.api.create_session())
        body = json_body(response)
        session_id = body.get("session_id") if isinstance(body, dict) else None
        if (
            response.status_code >= 300
            or not isinstance(body, dict)
            or not isinstance(session_id, str)
        ):
            raise GatewayError(
                f"POST /sessions answered {response.status_code}: {response.text[:200]}"
            )
        return body

    async def get_history(self, session_id: str) -> History:
        response = await self._call(self.api.get_history(session_id))
        if response.status_code == 404:
            raise SessionNotFound(f"session {session_id} not found")
        if response.status_code != 200:
            raise GatewayError(f"history answered {response.status_code}: {response.text[:200]}")
        try:
            return History.model_validate(json_body(response))
        except ValidationError as exc:
            raise GatewayError(f"history body is not a history: {exc.errors()[0]['msg']}") from exc

    async def list_sessions(self) -> SessionList:
        response = await self._call(self.api.list_sessions())
        if response.status_code != 200:
            raise GatewayError(f"list answered {response.status_code}")
        try:
            return SessionList.model_validate(json_body(response))
        except ValidationError as exc:
            raise GatewayError(f"list body is not a list: {exc.errors()[0]['msg']}") from exc
