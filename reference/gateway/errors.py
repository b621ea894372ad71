"""How runtime failures become gateway answers: pure functions, shared by REST and WebSocket."""

import json
from http import HTTPStatus
from typing import Any

import httpx

RUNTIME_UNAVAILABLE = "runtime unavailable"
RUNTIME_FAILED = "runtime failed"
KEY_REFUSED = "runtime refused the gateway's credentials"


def transport_failure(exc: httpx.RequestError) -> tuple[int, str]:
    """Status and message for a request that got no usable answer from the runtime.

    Refused or timed-out connections mean the runtime is down or overloaded: 503, so the IDE may
    retry. Anything else (a connection dropped mid-answer, a protocol violation) is a bad upstream
    answer: 502. Never 500, which would blame the gateway itself.
    """
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.TimeoutException):
        return HTTPStatus.SERVICE_UNAVAILABLE, f"{RUNTIME_UNAVAILABLE}: {reason}"
    return HTTPStatus.BAD_GATEWAY, f"{RUNTIME_FAILED}: {reason}"


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
