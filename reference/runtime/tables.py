"""The runtime's tables. Messages are rows appended one by one, never a rewritten blob."""

from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from reference.runtime.portable_text import PORTABLE_TEXT


class Base(DeclarativeBase):
    pass


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[str] = mapped_column(String(40))
    last_activity: Mapped[str] = mapped_column(String(40), index=True)
    current_agent: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(PORTABLE_TEXT, nullable=True)
    # User auth (X-AUTH-1): who created it; null when made with user auth off.
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Kept on the session row so an append never counts the messages it follows.
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    switch_count: Mapped[int] = mapped_column(Integer, default=0)


class MessageRow(Base):
    __tablename__ = "messages"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(PORTABLE_TEXT, nullable=True)
    name: Mapped[str | None] = mapped_column(PORTABLE_TEXT, nullable=True)
    tool_call_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))
    # The message as the history shows it, JSON text written with the row: a history read joins
    # these instead of building an object per row (docs/performance.md). Never holds NUL (JSON
    # escapes it), so plain text on PostgreSQL too. Null in a row written
    # before revision 0005 by a process that did not know the column.
    body: Mapped[str | None] = mapped_column(Text, nullable=True)


class AgentSwitchRow(Base):
    __tablename__ = "agent_switches"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_agent: Mapped[str] = mapped_column(String(64))
    to_agent: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(PORTABLE_TEXT, nullable=True)
    switched_at: Mapped[str] = mapped_column(String(40))


class ToolCallRow(Base):
    """A tool call the agent made, with the approval decision taken on it."""

    __tablename__ = "tool_calls"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    tool_name: Mapped[str] = mapped_column(PORTABLE_TEXT)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON)
    requires_approval: Mapped[bool] = mapped_column(Boolean)
    # awaiting_approval -> awaiting_result -> done
    state: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    feedback: Mapped[str | None] = mapped_column(PORTABLE_TEXT, nullable=True)


class SessionShareRow(Base):
    """A session shared read-only with one user (X-SHARE-1)."""

    __tablename__ = "session_shares"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    # A reserved word in PostgreSQL; SQLAlchemy quotes it wherever it is.
    user: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class ClientMessageRow(Base):
    """A user message the IDE named (X-IDEM-1) and the reply it was answered with.

    Written in the transaction of its turn, so a named message is stored exactly when its reply
    is. The primary key is the unique constraint that lets only one of two concurrent resends
    store a turn; the other replays this row.
    """

    __tablename__ = "client_messages"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    client_message_id: Mapped[str] = mapped_column(PORTABLE_TEXT, primary_key=True)
    # What the message said (role and content, hashed): the same name for another message is
    # the IDE's mistake, refused rather than answered with a reply to something else.
    digest: Mapped[str] = mapped_column(String(64))
    # The turn's frames as streamed, and its error event's text if it ended in one.
    frames: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(PORTABLE_TEXT, nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))
