"""The store's schema under Alembic: the revisions in `versions/`, applied on the store's own
connection by `sessionlab serve` (at start) and `sessionlab migrate`.

- An empty store is made at once from the models and stamped with the newest revision (the
  chain from the first revision is tested to give the same schema).
- A store made before migrations existed has no `alembic_version` table: every start ran
  create_all then, which adds missing tables but never changes a column. Such a store is
  recognised by what it holds, stamped with the revision it matches, then upgraded.
- A store behind the newest revision is upgraded, or, when the caller may not change it,
  reported as SchemaBehind.

Everything happens in the caller's transaction. On PostgreSQL an advisory lock held for that
transaction lets only one process at a time look and change: several runtime processes starting
on one database upgrade it once. SQLite is locked for writing from the start instead.
"""

import functools
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Text, inspect, text
from sqlalchemy.engine import Connection

from reference.runtime.tables import Base

HERE = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"
# Any number both sides agree on: it names the lock "the sessionlab schema".
_ADVISORY_LOCK = 0x5E5510_4AB
# The columns revision 0003 widened to TEXT on PostgreSQL.
_WIDENED = (("sessions", "title"), ("messages", "name"), ("tool_calls", "tool_name"))


class SchemaUnknown(Exception):
    """The store names a revision this version does not know: a newer version made it."""

    def __init__(self, current: str) -> None:
        super().__init__(
            f"the store's schema is at revision {current}, which this version does not know "
            "(a newer sessionlab made it)"
        )
        self.current = current


class SchemaBehind(Exception):
    """The store's schema is older than this version's, and may not be upgraded here."""

    def __init__(self, current: str, head: str) -> None:
        super().__init__(f"the store's schema is at revision {current}, this version needs {head}")
        self.current = current
        self.head = head


@dataclass(frozen=True)
class Outcome:
    """What preparing a store found and left: revision None before means an empty store;
    `recognised` a store made before migrations, and the revision it was stamped with."""

    before: str | None
    after: str
    recognised: str | None = None


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def scripts() -> ScriptDirectory:
    """The revisions, read once per process: a store opens at every runtime start."""
    return ScriptDirectory.from_config(config())


def head() -> str:
    found = scripts().get_current_head()
    assert found is not None, "the migrations have no head revision"
    return found


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(script.revision for script in scripts().walk_revisions())


def _stamp(connection: Connection, revision: str) -> None:
    MigrationContext.configure(connection).stamp(scripts(), revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the store says it is at; None when it has no version table."""
    return MigrationContext.configure(connection).get_current_revision()


def recognise(connection: Connection) -> str | None:
    """The revision a store made before migrations matches; None when it holds no sessions."""
    inspector = inspect(connection)
    if not inspector.has_table("sessions"):
        return None
    columns = {column["name"] for column in inspector.get_columns("sessions")}
    if "owner" not in columns or not inspector.has_table("session_shares"):
        return "0001"
    if connection.dialect.name == "postgresql":
        for table, name in _WIDENED:
            column = next(c for c in inspector.get_columns(table) if c["name"] == name)
            if not isinstance(column["type"], Text):
                return "0002"
    if not inspector.has_table("client_messages"):
        return "0003"
    return "0004"


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    elif connection.dialect.name == "sqlite":
        # The driver would begin only at the first row written, after the look around; nothing
        # has been sent on this connection yet.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def prepare(connection: Connection, upgrade: bool = True) -> Outcome:
    """Bring the store to the newest revision, or raise SchemaBehind when `upgrade` is off."""
    _lock(connection)
    newest = head()
    before = current_revision(connection)
    recognised = None
    if before is None:
        recognised = recognise(connection)
        if recognised is None:
            # Empty: the models as they are now, which the whole chain is tested to give.
            Base.metadata.create_all(connection)
            _stamp(connection, newest)
            return Outcome(None, newest)
        before = recognised
    elif before not in _known():
        raise SchemaUnknown(before)
    if before == newest:
        if recognised is not None:
            _stamp(connection, newest)
        return Outcome(before, newest, recognised)
    if not upgrade:
        raise SchemaBehind(before, newest)
    if recognised is not None:
        _stamp(connection, recognised)
    command.upgrade(config(connection), newest)
    return Outcome(before, newest, recognised)


async def upgrade_store(url: str, upgrade: bool = True) -> Outcome:
    """`prepare` on a store by URL, with an engine of its own (for `serve` and `migrate`)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(prepare, upgrade)
    finally:
        await engine.dispose()
