"""The route table: concrete paths, and the reference declaring its routes from it."""

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute

from contract import routes
from contract.routes import (
    CURRENT_AGENT,
    HEALTH,
    HISTORY,
    MESSAGE_STREAM,
    PROXIED,
    SOCKET,
    UNSHARE,
    Route,
    segment,
)
from reference.gateway import proxy, websocket
from reference.runtime import app as runtime_app
from reference.runtime import sharing

TABLE = [value for value in vars(routes).values() if isinstance(value, Route)]


def test_a_value_is_one_percent_encoded_segment() -> None:
    assert HISTORY.path(session_id="session_0123456789abcdef") == (
        "/sessions/session_0123456789abcdef/history"
    )
    assert HISTORY.path(session_id="a/b é?") == "/sessions/a%2Fb%20%C3%A9%3F/history"
    assert CURRENT_AGENT.path(session_id="..") == "/agents/%2E%2E/current"
    assert UNSHARE.path(session_id="s", reader="ben") == "/sessions/s/shares/ben"
    assert MESSAGE_STREAM.path() == "/agent/message/stream"
    assert segment(b"..") == "%2E%2E"


def test_a_raw_segment_goes_in_as_given() -> None:
    assert HISTORY.raw_path(session_id="..%2F..") == "/sessions/..%2F../history"
    assert SOCKET.raw_path(session_id="a b") == "/ws/a b"


@pytest.mark.parametrize("values", [{}, {"session_id": "s", "user": "ben"}, {"id": "s"}])
def test_a_path_takes_exactly_the_templates_values(values: dict[str, str]) -> None:
    with pytest.raises(TypeError, match="session_id"):
        HISTORY.path(**values)


def test_a_route_shows_as_method_and_template() -> None:
    assert str(HISTORY) == "GET /sessions/{session_id}/history"
    assert HISTORY.params == ("session_id",)
    assert UNSHARE.parts == ("/sessions/", "/shares/", "")


def test_the_runtime_declares_every_http_route_of_the_table_and_no_other() -> None:
    declared = {
        (method, route.path)
        for router in (runtime_app.router, sharing.router)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    http = {(route.method, route.template) for route in TABLE if route is not SOCKET}
    assert declared == http


def test_the_gateway_declares_the_socket_and_passes_on_what_the_table_says() -> None:
    sockets = [
        route.path for route in websocket.router.routes if isinstance(route, APIWebSocketRoute)
    ]
    assert sockets == [SOCKET.template]
    assert [route.method for route in proxy.ROUTES] == [route.method for route in PROXIED]
    assert HEALTH not in PROXIED
    assert proxy.resolve("GET", b"/sessions/a%2Fb/history") == "/sessions/a%2Fb/history"
