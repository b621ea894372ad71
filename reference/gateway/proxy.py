"""The REST proxy: one handler over an allow-list of runtime routes (G-PROXY-1, G-ERR-1, G-DOWN-1).

Routing works on the raw request path, not the decoded one, so that an id such as `..%2F..` stays
one path segment: decoded, its `/` would change which runtime route is called.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote, unquote_to_bytes

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from contract.routes import PROXIED, Route, segment
from reference.asgi_guards import OPEN_PATHS
from reference.errors import client_gone
from reference.gateway.deps import RUNTIME_CLIENT, SETTINGS
from reference.gateway.errors import UpstreamError, runtime_error
from reference.gateway.upstream import Answer, Upstream
from reference.gateway.users import current_user, unknown_share_target, user_headers
from reference.settings import GatewaySettings

# Request headers worth passing on; everything else, the client's key above all, stays here.
_FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "x-sessionlab-test")


@dataclass(frozen=True)
class ProxyRoute:
    method: str
    # The template's literal text around its `{name}` placeholders.
    parts: tuple[str, ...]
    pattern: re.Pattern[bytes]

    def target(self, raw_segments: Sequence[bytes]) -> str:
        """The runtime path with each raw segment of the client's path re-quoted."""
        quoted = [segment(unquote_to_bytes(raw)) for raw in raw_segments]
        pieces = [self.parts[0]]
        for value, part in zip(quoted, self.parts[1:], strict=True):
            pieces += [value, part]
        return "".join(pieces)


def _route(route: Route) -> ProxyRoute:
    # Each `{name}` matches one raw (still percent-encoded) segment.
    regex = "([^/]+)".join(re.escape(part) for part in route.parts)
    return ProxyRoute(route.method, route.parts, re.compile(f"^{regex}$".encode()))


ROUTES: tuple[ProxyRoute, ...] = tuple(_route(route) for route in PROXIED)


class MethodNotAllowed(LookupError):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = allowed


def resolve(method: str, raw_path: bytes) -> str | None:
    """The runtime path for an allowed (method, path), None for an unknown path.

    Raises MethodNotAllowed when the path is known but not with this method.
    """
    allowed: list[str] = []
    for route in ROUTES:
        match = route.pattern.match(raw_path)
        if match is None:
            continue
        if route.method != method:
            allowed.append(route.method)
            continue
        return route.target(match.groups())
    if allowed:
        raise MethodNotAllowed(allowed)
    return None


def _raw_path(request: Request) -> bytes:
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        return raw
    # A server that does not report the raw path: the decoded one is the best we have.
    return quote(request.url.path).encode()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class RestProxy:
    """Every HTTP request but the gateway's own health check, passed to the runtime.

    Plain ASGI, innermost of the gateway's guards rather than a FastAPI route: FastAPI's routing,
    request handling and dependencies cost about a fifth of the gateway's CPU on each proxied
    request (docs/performance.md), and a catch-all route uses none of them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The gateway's own pages (health, API docs) are FastAPI's; every other request is the
        # runtime's.
        if scope["type"] != "http" or (scope["path"] in OPEN_PATHS and scope["method"] == "GET"):
            await self.app(scope, receive, send)
            return
        state = scope["state"]
        request = Request(scope, receive)
        try:
            response = await proxy(request, state[RUNTIME_CLIENT], state[SETTINGS])
        except ClientDisconnect as exc:
            # As FastAPI's handler answers it on the gateway's own routes.
            response = await client_gone(request, exc)
        await response(scope, receive, send)


async def proxy(request: Request, runtime: Upstream, settings: GatewaySettings) -> Response:
    try:
        target = resolve(request.method, _raw_path(request))
    except MethodNotAllowed as exc:
        allow = ", ".join(exc.allowed)
        return _error(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", {"Allow": allow})
    if target is None:
        return _error(HTTPStatus.NOT_FOUND, "not found")
    query = request.scope.get("query_string", b"")
    url = f"{target}?{query.decode('latin-1')}" if query else target
    headers = {
        name: value
        for name in _FORWARDED_REQUEST_HEADERS
        if (value := request.headers.get(name)) is not None
    }
    user = current_user(request)
    headers.update(user_headers(user))
    content = await request.body()
    if user is not None and request.method == "POST" and target.endswith("/shares"):
        problem = unknown_share_target(content, frozenset(settings.user_tokens.values()))
        if problem is not None:
            return _error(HTTPStatus.UNPROCESSABLE_ENTITY, problem)
    try:
        upstream = await runtime.request(request.method, url, body=content, headers=headers)
    except UpstreamError as exc:
        return _error(exc.status, exc.message)
    return _pass_on(upstream, for_user=user is not None)


def _pass_on(upstream: Answer, for_user: bool = False) -> Response:
    status = upstream.status
    if status >= HTTPStatus.BAD_REQUEST:
        status, body = runtime_error(status, upstream.body, for_user=for_user)
        return JSONResponse(body, status_code=status)
    if status == HTTPStatus.NO_CONTENT or status == HTTPStatus.NOT_MODIFIED:
        return Response(status_code=status)
    # An export is a download: its file name travels with it.
    disposition = upstream.headers.get("content-disposition")
    return Response(
        content=upstream.body,
        status_code=status,
        media_type=upstream.headers.get("content-type", "application/json"),
        headers={"Content-Disposition": disposition} if disposition else None,
    )
