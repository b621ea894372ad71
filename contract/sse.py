"""Server-Sent Events framing, as pure functions over data (no I/O)."""

import json
from dataclasses import dataclass
from typing import Any

MESSAGE = "message"
DONE = "done"
ERROR = "error"


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def encode_event(event: str, data: Any) -> bytes:
    """One SSE event whose data is `data` as compact JSON (never more than one line)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


class SSEDecoder:
    """Incremental decoder: feed text as it arrives, get back the events it completed."""

    def __init__(self) -> None:
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: str) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            line, separator, rest = self._next_line(self._buffer)
            if not separator:
                return events
            self._buffer = rest
            event = self._take_line(line)
            if event is not None:
                events.append(event)

    @staticmethod
    def _next_line(buffer: str) -> tuple[str, str, str]:
        # Lines end in CRLF, LF or CR; a lone CR at the end may be the first half of a CRLF.
        for index, char in enumerate(buffer):
            if char == "\n":
                return buffer[:index], "\n", buffer[index + 1 :]
            if char == "\r":
                if index + 1 == len(buffer):
                    return "", "", buffer
                skip = 2 if buffer[index + 1] == "\n" else 1
                return buffer[:index], "\r", buffer[index + skip :]
        return "", "", buffer

    def _take_line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(event=self._event or MESSAGE, data="\n".join(self._data))
        self._event = ""
        self._data = []
        return event


def decode_events(text: str) -> list[SSEEvent]:
    """All complete events of a whole stream body."""
    return SSEDecoder().feed(text)
