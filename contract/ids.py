"""Session id formats of PROTOCOL.md section 2."""

import re
import secrets
import time

SERVER_ID_PATTERN = re.compile(r"^session_[0-9a-f]{16}$")
LOCAL_ID_PATTERN = re.compile(r"^session_\d{13}$")
WEBSOCKET_FALLBACK_ID = "ide-session"


def new_server_session_id() -> str:
    # 64 random bits, the same entropy as the 16 hex digits of a uuid4 the described system uses.
    return f"session_{secrets.token_hex(8)}"


def new_local_session_id(now_ms: int | None = None) -> str:
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    return f"session_{millis}"


def is_server_session_id(value: str) -> bool:
    return SERVER_ID_PATTERN.fullmatch(value) is not None


def is_local_session_id(value: str) -> bool:
    return LOCAL_ID_PATTERN.fullmatch(value) is not None
