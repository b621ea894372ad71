"""What a check's ending exception means: the target's failure, a blocked check, or sessionlab's own
error. The same condition always gets the same words; no message shows a raw exception object.
"""

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from conformance.failures import CheckFailure
from conformance.probes import describe_close
from conformance.run_state import Blocked, PrerequisiteFailure
from contract.frames import FrameError

Kind = Literal["passed", "failed", "blocked", "error"]
PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Classified:
    kind: Kind
    # The requirements the outcome counts for; the check's others are blocked by `blocked_by`.
    blamed: tuple[str, ...]
    message: str
    blocked_by: str | None = None
    traceback: str = ""


def describe_refusal(exc: BaseException, url: str, timeout: float) -> str:
    """Why a WebSocket did not open."""
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} instead of the upgrade"
    if isinstance(exc, InvalidHandshake):
        return f"a broken handshake: {exc}"
    if isinstance(exc, TimeoutError):
        return f"no handshake within {timeout:g} s"
    if isinstance(exc, OSError):
        return f"no connection to {url}: {exc.strerror or exc}"
    return f"{type(exc).__name__}"


def _request(exc: httpx.RequestError) -> str:
    try:
        request = exc.request
    except RuntimeError:
        return "a request"
    return f"{request.method} {request.url}"


def _timeout(exc: httpx.RequestError) -> str:
    try:
        limits = exc.request.extensions.get("timeout", {})
    except RuntimeError:
        return ""
    read = limits.get("read") if isinstance(limits, dict) else None
    return f" within {read:g} s" if isinstance(read, int | float) else ""


def describe_target_fault(exc: BaseException) -> str | None:
    """The words for an exception the target caused; None when the fault is sessionlab's."""
    if isinstance(exc, ConnectionClosed):
        text = str(exc)
        described = text.startswith("the socket closed")
        return text if described else f"the socket closed ({describe_close(exc)})"
    if isinstance(exc, TimeoutError):
        text = str(exc)
        # Timeouts of the probes say what they waited for; a bare one only that time ran out.
        return text or f"no answer from the target within the check's deadline ({_where(exc)})"
    if isinstance(exc, InvalidStatus):
        return f"the WebSocket was refused: HTTP {exc.response.status_code}"
    if isinstance(exc, InvalidHandshake):
        return f"a broken WebSocket handshake: {exc}"
    if isinstance(exc, FrameError):
        return f"an invalid frame from the gateway: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return f"{_request(exc)}: no answer{_timeout(exc)}"
    if isinstance(exc, httpx.ConnectError):
        return f"{_request(exc)}: no connection ({_reason(exc)})"
    if isinstance(exc, httpx.TransportError):
        return f"{_request(exc)}: the connection broke ({_reason(exc)})"
    if isinstance(exc, ConnectionError):
        return f"no connection: {exc.strerror or type(exc).__name__}"
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else type(exc).__name__


def _where(exc: BaseException) -> str:
    """The innermost line of sessionlab's own code the exception passed through."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(PACKAGE)]
    chosen = ours or list(frames)
    if not chosen:
        return "unknown place"
    frame = chosen[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""


def classify(exc: BaseException | None, ids: tuple[str, ...]) -> Classified:
    if exc is None:
        return Classified("passed", ids, "")
    if isinstance(exc, Blocked):
        return Classified("blocked", ids, str(exc), exc.prerequisite)
    if isinstance(exc, CheckFailure):
        if exc.requirement in ids:
            # A check of several requirements stops at the first failure: the others wait on it.
            return Classified("failed", (exc.requirement,), _first_line(exc))
        # A failure of a requirement the check stands on (a prerequisite, a profile feature): that
        # requirement fails (the run records it); this check's own are blocked by it.
        kind = "prerequisite" if isinstance(exc, PrerequisiteFailure) else "requirement"
        return Classified(
            "blocked",
            ids,
            f"blocked by the {kind} {exc.requirement}: {_first_line(exc)}",
            exc.requirement,
        )
    described = describe_target_fault(exc)
    if described is not None:
        return Classified("failed", ids, described)
    text = _first_line(exc)
    message = (
        f"sessionlab's own error, not the target's: {type(exc).__name__}"
        f"{': ' + text if text else ''} in {_where(exc)}; please report it"
    )
    trace = "".join(traceback.format_exception(exc))
    return Classified("error", ids, message, traceback=trace)
