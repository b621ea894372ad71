"""The IDE's tool executor: a small in-memory workspace the agent's tool calls act on."""

from dataclasses import dataclass, field
from typing import Any, Protocol


class ToolExecutor(Protocol):
    def run(self, tool_name: str, arguments: dict[str, Any]) -> Any:
        """The tool's result; raise ToolFailed with the error text on failure."""
        ...


class ToolFailed(Exception):
    pass


@dataclass
class FakeWorkspace:
    files: dict[str, str] = field(default_factory=dict)

    def run(self, tool_name: str, arguments: dict[str, Any]) -> Any:
        path = str(arguments.get("path", ""))
        if tool_name == "read_file":
            if path not in self.files:
                raise ToolFailed(f"no such file: {path}")
            return self.files[path]
        if tool_name == "write_file":
            self.files[path] = str(arguments.get("content", ""))
            return f"wrote {len(self.files[path])} characters to {path}"
        if tool_name == "list_files":
            return sorted(self.files)
        raise ToolFailed(f"unknown tool: {tool_name}")
