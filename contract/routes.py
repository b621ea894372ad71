"""The protocol's routes (PROTOCOL.md sections 3 to 5 and the extensions), each named once.

A route is a method and a path template with FastAPI-style `{name}` placeholders: the runtime
declares its handlers with `Route.template`, the gateway builds its allow-list from `PROXIED`, and
clients build concrete paths with `Route.path`, which makes each value one percent-encoded path
segment. `Route.raw_path` puts values in as given, for callers that have encoded a segment
themselves or send a malformed one on purpose.
"""

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

Method = Literal["GET", "HEAD", "POST", "PATCH", "DELETE"]

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def segment(value: str | bytes) -> str:
    """One path segment carrying exactly `value`: `/` and everything outside the unreserved set
    percent-encoded, and the dot segments `.` and `..` too (left bare, a client or server would
    resolve them away)."""
    if value in ((".", "..") if isinstance(value, str) else (b".", b"..")):
        return "%2E" * len(value)
    return quote(value, safe="")


@dataclass(frozen=True)
class Route:
    method: Method
    template: str

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.template))

    @property
    def parts(self) -> tuple[str, ...]:
        """The template's literal text around its placeholders (one more than `params`)."""
        return tuple(_PLACEHOLDER.split(self.template)[::2])

    def path(self, **values: str) -> str:
        """The concrete path, each value one percent-encoded segment."""
        return self.raw_path(**{name: segment(value) for name, value in values.items()})

    def raw_path(self, **segments: str) -> str:
        """The concrete path with each segment put in as given: already encoded, or odd on
        purpose (a check that sends an unencoded id keeps what it sends)."""
        if set(segments) != set(self.params):
            raise TypeError(f"{self} takes {', '.join(self.params) or 'no values'}")
        return _PLACEHOLDER.sub(lambda match: segments[match.group(1)], self.template)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


# Runtime and gateway (R-HEALTH-1, G-HEALTH-1), answered without a key.
HEALTH = Route("GET", "/health")

# Sessions (R-CREATE-1, R-LIST-1, R-HIST-1, R-AGENTS-1, R-AGENTS-2), on the runtime and through the
# gateway (G-PROXY-1).
CREATE_SESSION = Route("POST", "/sessions")
LIST_SESSIONS = Route("GET", "/sessions")
HISTORY = Route("GET", "/sessions/{session_id}/history")
# The reference runtime answers whether a session exists without reading its history; the gateway
# asks it so before it accepts a socket, and falls back to GET for a runtime without it.
HISTORY_HEAD = Route("HEAD", "/sessions/{session_id}/history")
LIST_AGENTS = Route("GET", "/agents")
CURRENT_AGENT = Route("GET", "/agents/{session_id}/current")

# The runtime's turn (R-STREAM-1), which the gateway relays over its socket.
MESSAGE_STREAM = Route("POST", "/agent/message/stream")

# The gateway's socket (W-CONN-1); its opening handshake is a GET.
SOCKET = Route("GET", "/ws/{session_id}")

# Lifecycle (X-DEL-1, X-REN-1).
DELETE_SESSION = Route("DELETE", "/sessions/{session_id}")
RENAME_SESSION = Route("PATCH", "/sessions/{session_id}")
# Export and search (X-EXP-1, X-SRCH-1).
EXPORT = Route("GET", "/sessions/{session_id}/export")
SEARCH = Route("GET", "/sessions/search")
# Sharing (X-SHARE-1).
SHARE = Route("POST", "/sessions/{session_id}/shares")
LIST_SHARES = Route("GET", "/sessions/{session_id}/shares")
UNSHARE = Route("DELETE", "/sessions/{session_id}/shares/{reader}")

# The runtime's own, for the gateway only: what a user may do with a session (X-AUTH-1), asked
# before a socket opens.
ACCESS = Route("GET", "/sessions/{session_id}/access")

# What the gateway passes on to the runtime. In this order: a path that several templates match
# (`/sessions/search` is also a `/sessions/{session_id}`) lists the methods of those before it in
# a 405's Allow header.
PROXIED: tuple[Route, ...] = (
    CREATE_SESSION,
    LIST_SESSIONS,
    HISTORY,
    LIST_AGENTS,
    CURRENT_AGENT,
    DELETE_SESSION,
    RENAME_SESSION,
    EXPORT,
    SEARCH,
    SHARE,
    LIST_SHARES,
    UNSHARE,
)
