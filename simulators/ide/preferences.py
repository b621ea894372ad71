"""The IDE's preferences file: what survives an IDE restart (current session, last agent)."""

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Preferences:
    path: Path

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return (
            {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}
        )

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: an IDE killed mid-write never leaves half a file.
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".prefs-")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temporary, self.path)

    @property
    def current_session_id(self) -> str | None:
        return self._read().get("current_session_id")

    @property
    def last_agent_type(self) -> str | None:
        return self._read().get("last_agent_type")

    def store_session(self, session_id: str, agent_type: str = "orchestrator") -> None:
        self._write(
            {**self._read(), "current_session_id": session_id, "last_agent_type": agent_type}
        )
