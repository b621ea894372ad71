"""A message as the history shows it, in JSON: what a message row stores and a history joins."""

import json
from typing import Any

from pydantic_core import to_json


def message_fields(
    role: str, content: str | None, name: str | None, tool_call_id: str | None, tool_calls: Any
) -> dict[str, Any]:
    """One message as Message serialises it: `content` always, the other fields when set.

    `tool_calls` as a store hands it back: SQLite the JSON text, asyncpg decoded.
    """
    fields: dict[str, Any] = {"role": role, "content": content}
    if name is not None:
        fields["name"] = name
    if tool_call_id is not None:
        fields["tool_call_id"] = tool_call_id
    if isinstance(tool_calls, str):
        tool_calls = None if tool_calls == "null" else json.loads(tool_calls)
    if tool_calls is not None:
        fields["tool_calls"] = tool_calls
    return fields


def message_body(
    role: str, content: str | None, name: str | None, tool_call_id: str | None, tool_calls: Any
) -> str:
    """The JSON text of message_fields, by pydantic's writer: the bytes a History model gives."""
    return to_json(message_fields(role, content, name, tool_call_id, tool_calls)).decode()
