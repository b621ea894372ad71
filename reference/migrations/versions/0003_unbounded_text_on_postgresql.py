"""Text columns without a length on PostgreSQL, as the models have declared them since NUL began
to be stored escaped.

Revision ID: 0003
Revises: 0002

A title was VARCHAR(200) and a tool name or a message's name VARCHAR(256): an escaped NUL takes
two characters, so a title of 200 characters holding NUL no longer fitted, nor did a tool name
longer than 256 that the contract allows. create_all never changed an existing column, so a store
made before kept the old types. VARCHAR to TEXT rewrites no row on PostgreSQL.

SQLite is left as it is: it does not enforce a VARCHAR's length (both are TEXT affinity), and
changing a column type there means copying the table, which on a store with foreign keys on
would cascade the old table's deletion into its children.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WIDENED = {
    ("sessions", "title"): sa.String(200),
    ("messages", "name"): sa.String(256),
    ("tool_calls", "tool_name"): sa.String(256),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for (table, column), old in WIDENED.items():
        op.alter_column(table, column, type_=sa.Text(), existing_type=old)
