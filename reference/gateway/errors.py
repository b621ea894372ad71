"""How runtime failures become gateway answers, shared by REST and WebSocket."""

import json
from http import HTTPStatus
from typing import Any

RUNTIME_UNAVAILABLE = "runtime unavailable"
RUNTIME_FAILED = "runtime failed"
KEY_REFUSED = "runtime refused the gateway's credentials"


class UpstreamError(Exception):
    """No usable answer from the runtime; `status` and `message` are the client's answer."""

    status: int = HTTPStatus.BAD_GATEWAY
    prefix = RUNTIME_FAILED

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.message = f"{self.prefix}: {reason}"


class Unreachable(UpstreamError):
    """Refused or timed out: the runtime is down or overloaded, and the IDE may retry (503)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    prefix = RUNTIME_UNAVAILABLE


class Broken(UpstreamError):
    """A connection dropped mid-answer, or an answer that is no HTTP: a bad upstream answer."""


class Busy(UpstreamError):
    """No runtime connection came free in time: the gateway itself is saturated (503)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    prefix = "gateway busy"

    def __init__(self) -> None:
        super().__init__("try again later")


def _error_text(detail: Any, fallback: str) -> str:
    if isinstance(detail, str) and detail:
        return detail
    if detail is None:
        return fallback
    # FastAPI's 422 `detail` is a list of problems: keep it readable but whole.
    return json.dumps(detail, ensure_ascii=False, separators=(",", ":"))


def runtime_error(
    status: int, content: bytes, for_user: bool = False
) -> tuple[int, dict[str, Any]]:
    """Status and JSON body for a runtime error answer (G-ERR-1): status N stays N, with `error`.

    Except a refusal of the gateway's own key: that is a gateway misconfiguration, not the
    client's fault, so the IDE gets a 502 rather than a 401 it would blame on its own key. On a
    call made for a user (X-AUTH-1) a 403 is the runtime's answer to that user (a reader may not
    write, X-SHARE-1) and is passed on.
    """
    if status == HTTPStatus.UNAUTHORIZED or (status == HTTPStatus.FORBIDDEN and not for_user):
        return HTTPStatus.BAD_GATEWAY, {"error": KEY_REFUSED}
    return status, error_body(status, content)


def error_body(status: int, content: bytes) -> dict[str, Any]:
    """A runtime error answer as a JSON object with a string `error`, keeping what it carried."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    try:
        data: Any = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        data = None
        text = content.decode("utf-8", errors="replace").strip()
        return {"error": text[:500] or phrase}
    if not isinstance(data, dict):
        return {"error": phrase} if data is None else {"error": phrase, "detail": data}
    if isinstance(data.get("error"), str):
        return data
    return {**data, "error": _error_text(data.get("error") or data.get("detail"), phrase)}
