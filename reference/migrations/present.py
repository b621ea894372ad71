"""What a store already holds, asked from inside a migration."""

from alembic import op
from sqlalchemy import inspect


def has_table(name: str) -> bool:
    return inspect(op.get_bind()).has_table(name)


def has_column(table: str, column: str) -> bool:
    return any(found["name"] == column for found in inspect(op.get_bind()).get_columns(table))
