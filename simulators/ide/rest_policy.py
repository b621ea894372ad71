"""How each client model calls the gateway's REST routes: its headers, ids in paths, timeouts."""

from dataclasses import dataclass
from urllib.parse import quote

from simulators.ide.settings import IdeSettings

# The real IDE's built-in client key, sent when none is configured.
SHIPPED_DEFAULT_KEY = "change-me-internal-key"
SHIPPED_HTTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class RestPolicy:
    # The shipped client always sends a key: a gateway without client auth just ignores it.
    default_key: str | None
    encode_ids: bool
    # None: the settings' request and connect timeouts.
    fixed_timeout: float | None

    def headers(self, settings: IdeSettings) -> dict[str, str]:
        key = settings.client_key or self.default_key
        return {**({"X-Internal-Auth": key} if key else {}), **settings.headers}

    def path_id(self, session_id: str) -> str:
        # The shipped client pastes the id into the URL as it is: `/` or `?` in it change the route.
        return quote(session_id, safe="") if self.encode_ids else session_id

    def timeouts(self, settings: IdeSettings) -> tuple[float, float]:
        """(request, connect) in seconds."""
        if self.fixed_timeout is not None:
            return settings.scaled(self.fixed_timeout), settings.scaled(self.fixed_timeout)
        return settings.scaled(settings.request_timeout), settings.scaled(settings.connect_timeout)


DESIGNED_REST = RestPolicy(default_key=None, encode_ids=True, fixed_timeout=None)
SHIPPED_REST = RestPolicy(
    default_key=SHIPPED_DEFAULT_KEY, encode_ids=False, fixed_timeout=SHIPPED_HTTP_TIMEOUT
)
