"""What the user sees in the chat: its items, how a loaded history becomes items (C-CHAT-1), and
how streamed chunks become bubbles, per client model."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from contract.bodies import History

ItemKind = Literal["user", "assistant", "tool_result", "tool_call", "agent_switch", "error"]


@dataclass(frozen=True)
class ChatItem:
    kind: ItemKind
    text: str
    call_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How a turn ended for the user: a final reply, or an error."""

    kind: Literal["reply", "error"]
    text: str


def designed_history_items(history: History | None) -> list[ChatItem]:
    """user -> user item, assistant with text -> final assistant item, tool -> tool-result item."""
    items: list[ChatItem] = []
    for message in history.messages if history else []:
        if message.role == "user":
            items.append(ChatItem("user", message.content or ""))
        elif message.role == "assistant" and message.content is not None:
            items.append(ChatItem("assistant", message.content))
        elif message.role == "tool":
            items.append(ChatItem("tool_result", message.content or "", message.tool_call_id))
    return items


def shipped_history_items(history: History | None) -> list[ChatItem]:
    """The real IDE keeps an assistant message without text (a tool-call request) as an empty
    bubble, and gives a tool result without a call id the id ''."""
    items: list[ChatItem] = []
    for message in history.messages if history else []:
        if message.role == "user":
            items.append(ChatItem("user", message.content or ""))
        elif message.role == "assistant":
            items.append(ChatItem("assistant", message.content or ""))
        elif message.role == "tool":
            # Its item holds {'result': content}; the item's text is that content.
            items.append(ChatItem("tool_result", message.content or "", message.tool_call_id or ""))
    return items


@dataclass(frozen=True)
class ChatView:
    history_items: Callable[[History | None], list[ChatItem]]
    # The real IDE adds every frame to the chat as it comes: one bubble per chunk.
    bubble_per_chunk: bool


DESIGNED_VIEW = ChatView(designed_history_items, bubble_per_chunk=False)
SHIPPED_VIEW = ChatView(shipped_history_items, bubble_per_chunk=True)
