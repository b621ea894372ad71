"""Client key check of the gateway's REST paths (G-AUTH-1).

The shared ASGI key guard rather than a route dependency, so that every HTTP path is covered,
including the proxy's own 404s and routes added later. It only looks at HTTP scopes: WebSockets
pass, since the IDE opens them without a key. The key is compared in constant time, never logged.
"""

from starlette.types import ASGIApp

from reference.asgi_guards import OPEN_PATHS, KeyGuard


def client_key_guard(app: ASGIApp, client_key: str) -> ASGIApp:
    return KeyGuard(app, key=client_key.encode(), open_paths=OPEN_PATHS)
