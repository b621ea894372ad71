"""What each client model writes on the socket: the frames, and what an approval decision sends
and runs."""

from dataclasses import dataclass
from typing import Any, Protocol

from contract.frames import ToolCallFrame
from simulators.ide.approvals import Verdict
from simulators.ide.tools import ToolFailed

Frame = dict[str, Any]


@dataclass(frozen=True)
class Decided:
    frame: Frame
    # The arguments the IDE runs the tool with; None when the call was rejected.
    run_with: dict[str, Any] | None


class FramesOut(Protocol):
    def user_message(self, content: str, client_message_id: str | None = None) -> Frame:
        """`client_message_id`: the name X-IDEM-1 lets a client give a message, if the model
        writes one."""
        ...

    def switch_agent(self, agent_type: str, content: str) -> Frame: ...

    def tool_result(self, call: ToolCallFrame, arguments: dict[str, Any], value: Any) -> Frame: ...

    def tool_failed(self, call: ToolCallFrame, failure: ToolFailed) -> Frame: ...

    def decision(self, call: ToolCallFrame, verdict: Verdict) -> Decided: ...

    def rejected(self, call: ToolCallFrame, verdict: Verdict) -> Frame:
        """The `tool_result` that follows a rejection."""
        ...


def _user_message(content: str) -> Frame:
    return {"type": "user_message", "content": content, "role": "user"}


def _switch_agent(agent_type: str, content: str) -> Frame:
    return {"type": "switch_agent", "agent_type": agent_type, "content": content}


class DesignedFrames:
    """The design note's frames: optional fields left out, the executor's value as the result."""

    def user_message(self, content: str, client_message_id: str | None = None) -> Frame:
        frame = _user_message(content)
        if client_message_id is not None:
            frame["client_message_id"] = client_message_id
        return frame

    def switch_agent(self, agent_type: str, content: str) -> Frame:
        return _switch_agent(agent_type, content)

    def tool_result(self, call: ToolCallFrame, arguments: dict[str, Any], value: Any) -> Frame:
        return {
            "type": "tool_result",
            "call_id": call.call_id,
            "tool_name": call.tool_name,
            "result": value,
        }

    def tool_failed(self, call: ToolCallFrame, failure: ToolFailed) -> Frame:
        return {
            "type": "tool_result",
            "call_id": call.call_id,
            "tool_name": call.tool_name,
            "error": failure.message,
        }

    def decision(self, call: ToolCallFrame, verdict: Verdict) -> Decided:
        frame: Frame = {
            "type": "hitl_decision",
            "call_id": call.call_id,
            "decision": verdict.decision,
        }
        if verdict.arguments is not None:
            frame["modified_arguments"] = verdict.arguments
        if verdict.feedback is not None:
            frame["feedback"] = verdict.feedback
        if verdict.decision == "reject":
            return Decided(frame, None)
        edited = verdict.decision == "edit" and verdict.arguments is not None
        return Decided(frame, verdict.arguments if edited else call.arguments)

    def rejected(self, call: ToolCallFrame, verdict: Verdict) -> Frame:
        reason = f": {verdict.feedback}" if verdict.feedback else ""
        failure = ToolFailed(f"rejected by the user{reason}", "user_rejected")
        return self.tool_failed(call, failure)


# The real IDE's error mapper: a label per error code, then the exception's own message.
_ERROR_LABELS = {
    "file_not_found": "File not found",
    "permission_denied": "Access denied",
    "invalid_path": "Invalid path",
    "user_rejected": "Operation rejected by user",
    "unsupported_tool": "Unsupported tool",
    "general_error": "Tool execution failed",
}
# The real executor's own messages for the codes the fake workspace raises.
_ERROR_MESSAGES = {
    "file_not_found": "File not found: {path}",
    "unsupported_tool": "Unsupported tool: {tool}",
    "user_rejected": "User rejected operation: {operation}",
}
SHIPPED_REJECT_FEEDBACK = "User rejected this operation"


def shipped_error_text(failure: ToolFailed) -> str:
    label = _ERROR_LABELS.get(failure.code, "Unknown error")
    template = _ERROR_MESSAGES.get(failure.code)
    try:
        message = template.format(**failure.details) if template else failure.message
    except KeyError:
        message = failure.message
    text = f"[{label}] {message}"
    if failure.details:
        text += "\nDetails: " + ", ".join(
            f"{key}={value}" for key, value in failure.details.items()
        )
    return text


def _operation_result(tool_name: str, arguments: dict[str, Any], value: Any) -> Frame:
    """The real IDE's FileOperationResult, every field written out."""
    result: Frame = {
        "success": True,
        "content": None,
        "lines_read": None,
        "bytes_written": None,
        "backup_path": None,
        "error": None,
    }
    if tool_name == "write_file":
        result["bytes_written"] = len(str(arguments.get("content", "")).encode())
    elif isinstance(value, list):
        # A listing reads like a file of names, one a line.
        result["content"] = "\n".join(str(item) for item in value)
        result["lines_read"] = len(value)
    else:
        result["content"] = value if isinstance(value, str) else str(value)
        result["lines_read"] = len(result["content"].splitlines())
    return result


class ShippedFrames:
    """The real IDE's frames: every field written out, null included."""

    def user_message(self, content: str, client_message_id: str | None = None) -> Frame:
        # The real IDE has no message ids: a name asked for is not written.
        return _user_message(content)

    def switch_agent(self, agent_type: str, content: str) -> Frame:
        return _switch_agent(agent_type, content)

    def tool_result(self, call: ToolCallFrame, arguments: dict[str, Any], value: Any) -> Frame:
        return {
            "type": "tool_result",
            "call_id": call.call_id,
            "tool_name": call.tool_name,
            "result": _operation_result(call.tool_name, arguments, value),
            "error": None,
        }

    def tool_failed(self, call: ToolCallFrame, failure: ToolFailed) -> Frame:
        return {
            "type": "tool_result",
            "call_id": call.call_id,
            "tool_name": call.tool_name,
            "result": None,
            "error": shipped_error_text(failure),
        }

    def decision(self, call: ToolCallFrame, verdict: Verdict) -> Decided:
        frame: Frame = {"type": "hitl_decision", "call_id": call.call_id}
        if verdict.decision == "reject":
            frame.update(
                decision="reject", modified_arguments=None, feedback=SHIPPED_REJECT_FEEDBACK
            )
            return Decided(frame, None)
        # Its dialog's "edit" approves: the edited arguments are neither sent nor run.
        frame.update(decision="approve", modified_arguments=None, feedback=None)
        return Decided(frame, call.arguments)

    def rejected(self, call: ToolCallFrame, verdict: Verdict) -> Frame:
        name = call.tool_name
        failure = ToolFailed(
            f"User rejected operation: {name}", "user_rejected", {"operation": name}
        )
        return self.tool_failed(call, failure)
