"""Each message's history JSON stored with it (docs/performance.md).

Revision ID: 0005
Revises: 0004

A history read joins the stored texts instead of building and serialising an object per message.
Rows already there get theirs here, computed as the runtime computes a new row's, so a history
reads the same bytes before and after.
"""

import sqlalchemy as sa
from alembic import op

from reference.migrations.present import has_column
from reference.runtime.message_body import message_body
from reference.runtime.portable_text import PORTABLE_TEXT

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    # A store recognised as older than it is (its version table lost) may have the column.
    if not has_column("messages", "body"):
        op.add_column("messages", sa.Column("body", sa.Text(), nullable=True))
    messages = sa.table(
        "messages",
        sa.column("session_id", sa.String()),
        sa.column("seq", sa.Integer()),
        sa.column("role", sa.String()),
        # As the runtime reads them: on PostgreSQL a NUL is stored escaped.
        sa.column("content", PORTABLE_TEXT),
        sa.column("name", PORTABLE_TEXT),
        sa.column("tool_call_id", sa.String()),
        sa.column("tool_calls", sa.JSON()),
        sa.column("body", sa.Text()),
    )
    bind = op.get_bind()
    fill = (
        sa.update(messages)
        .where(messages.c.session_id == sa.bindparam("key_session"))
        .where(messages.c.seq == sa.bindparam("key_seq"))
        .values(body=sa.bindparam("new_body"))
    )
    while True:
        rows = bind.execute(
            sa.select(
                messages.c.session_id,
                messages.c.seq,
                messages.c.role,
                messages.c.content,
                messages.c.name,
                messages.c.tool_call_id,
                messages.c.tool_calls,
            )
            .where(messages.c.body.is_(None))
            .limit(BATCH)
        ).all()
        if not rows:
            return
        bind.execute(
            fill,
            [
                {
                    "key_session": row.session_id,
                    "key_seq": row.seq,
                    "new_body": message_body(
                        row.role, row.content, row.name, row.tool_call_id, row.tool_calls
                    ),
                }
                for row in rows
            ],
        )
