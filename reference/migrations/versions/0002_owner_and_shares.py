"""User auth and sharing (X-AUTH-1, X-SHARE-1): each session's owner; the shares table.

Revision ID: 0002
Revises: 0001

Sessions made before have no owner: they stay visible with user auth off, hidden from users.
"""

import sqlalchemy as sa
from alembic import op

from reference.migrations.present import has_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("owner", sa.String(64), nullable=True))
    op.create_index("ix_sessions_owner", "sessions", ["owner"])
    # Before migrations, every start ran create_all: the table may be there already.
    if has_table("session_shares"):
        return
    op.create_table(
        "session_shares",
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user", sa.String(64), primary_key=True),
    )
    op.create_index("ix_session_shares_user", "session_shares", ["user"])
