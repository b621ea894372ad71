"""Named user messages and their replies (X-IDEM-1, profile idempotent).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from reference.migrations.present import has_table

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Before migrations, every start ran create_all: the table may be there already.
    if has_table("client_messages"):
        return
    op.create_table(
        "client_messages",
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("client_message_id", sa.Text(), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("frames", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
