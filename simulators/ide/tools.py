"""The IDE's tool executor: a small in-memory workspace the agent's tool calls act on."""

from dataclasses import dataclass, field
from typing import Any, Protocol


class ToolExecutor(Protocol):
    def run(self, tool_name: str, arguments: dict[str, Any]) -> Any:
        """The tool's result; raise ToolFailed with the error text on failure."""
        ...


class ToolFailed(Exception):
    """A tool that did not run. `code` and `details` are what the real IDE's error mapper
    formats (`file_not_found`, {"path": ...}); an executor may leave them out."""

    def __init__(
        self, message: str, code: str = "general_error", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}


@dataclass
class FakeWorkspace:
    files: dict[str, str] = field(default_factory=dict)

    def run(self, tool_name: str, arguments: dict[str, Any]) -> Any:
        path = str(arguments.get("path", ""))
        if tool_name == "read_file":
            if path not in self.files:
                raise ToolFailed(f"no such file: {path}", "file_not_found", {"path": path})
            return self.files[path]
        if tool_name == "write_file":
            self.files[path] = str(arguments.get("content", ""))
            return f"wrote {len(self.files[path])} characters to {path}"
        if tool_name == "list_files":
            return sorted(self.files)
        raise ToolFailed(f"unknown tool: {tool_name}", "unsupported_tool", {"tool": tool_name})
