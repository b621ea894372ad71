"""The store's schema under Alembic: every earlier schema, versioned or made by create_all before
migrations existed, is upgraded with its data kept, on real SQLite files and the real PostgreSQL;
`sessionlab serve` upgrades, or with --no-migrate refuses naming the command to run."""

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from reference import migrations
from reference.runtime.store import Store
from reference.runtime.tables import Base
from tests.fixtures.postgres import create_database, drop_database
from tests.test_serve_running import SESSIONLAB, Serving, clean_environment, run_serve

SESSION = "session_from_before"
EARLIER = ["0001", "0002", "0003", "0004"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
        return
    url = create_database()
    yield url
    drop_database(url)


def on(url: str, work: Callable[[Connection], Any]) -> Any:
    """`work` on a connection of its own, in one transaction."""

    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def at_revision(revision: str, versioned: bool) -> Callable[[Connection], None]:
    """The schema of `revision`; without its version table, as create_all left a store before
    migrations existed."""

    def make(connection: Connection) -> None:
        command.upgrade(migrations.config(connection), revision)
        if not versioned:
            connection.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))

    return make


def fill(revision: str) -> Callable[[Connection], None]:
    """A session with a message, a switch and a pending tool call, as that revision stored them."""

    def insert(connection: Connection) -> None:
        owner = ", owner" if revision >= "0002" else ""
        owner_value = ", 'ann'" if revision >= "0002" else ""
        connection.execute(
            text(
                "INSERT INTO sessions (id, created_at, last_activity, current_agent, title, "
                f"message_count, switch_count{owner}) VALUES (:id, '2026-11-25T06:35:59+00:00', "
                f"'2026-11-25T06:36:00+00:00', 'coder', 'kept', 1, 1{owner_value})"
            ),
            {"id": SESSION},
        )
        connection.execute(
            text(
                "INSERT INTO messages (session_id, seq, role, content, created_at) "
                "VALUES (:id, 0, 'user', 'hello from before', '2026-11-25T06:36:00+00:00')"
            ),
            {"id": SESSION},
        )
        connection.execute(
            text(
                "INSERT INTO agent_switches (session_id, seq, from_agent, to_agent, reason, "
                "switched_at) VALUES (:id, 0, 'orchestrator', 'coder', 'asked', "
                "'2026-11-25T06:36:00+00:00')"
            ),
            {"id": SESSION},
        )
        connection.execute(
            text(
                "INSERT INTO tool_calls (call_id, session_id, tool_name, arguments, "
                "requires_approval, state) VALUES ('call_1', :id, 'read_file', :arguments, "
                ":approval, 'awaiting_approval')"
            ),
            {"id": SESSION, "arguments": '{"path": "a"}', "approval": True},
        )

    return insert


def differences(connection: Connection) -> list[Any]:
    """What the store's schema lacks or has more than the models, as Alembic compares them.

    Types are compared on PostgreSQL only: SQLite keeps VARCHAR where the models say TEXT, on
    purpose (revision 0003 says why), and treats both alike.
    """
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": connection.dialect.name == "postgresql",
            "include_name": lambda name, kind, _parent: (
                kind != "table" or name != migrations.VERSION_TABLE
            ),
        },
    )
    return list(compare_metadata(context, Base.metadata))


def kept_data(url: str) -> None:
    async def read() -> None:
        store = await Store.open(url, upgrade=False)
        try:
            state = await store.get_session(SESSION)
            messages = await store.messages(SESSION)
            switches = await store.agent_history(SESSION)
            call = await store.tool_call(SESSION, "call_1")
            history = await store.history(SESSION)
            async with store.engine.connect() as connection:
                bodies = (await connection.execute(text("SELECT body FROM messages"))).all()
        finally:
            await store.close()
        # Revision 0005 wrote the stored text of the message that was there, as a new row's.
        assert bodies == [('{"role":"user","content":"hello from before"}',)]
        assert history.messages_json == '[{"role":"user","content":"hello from before"}]'
        assert (state.title, state.current_agent, state.message_count) == ("kept", "coder", 1)
        assert [(m.role, m.content) for m in messages] == [("user", "hello from before")]
        assert [(s.from_agent, s.to_agent, s.reason) for s in switches] == [
            ("orchestrator", "coder", "asked")
        ]
        assert call is not None
        assert (call.tool_name, call.arguments, call.state) == (
            "read_file",
            {"path": "a"},
            "awaiting_approval",
        )

    asyncio.run(read())


def test_the_revisions_from_the_first_give_the_schema_of_the_models(store_url: str) -> None:
    on(store_url, lambda connection: command.upgrade(migrations.config(connection), "head"))
    assert on(store_url, differences) == []
    assert on(store_url, migrations.current_revision) == migrations.head()


def test_an_empty_store_is_made_from_the_models_and_stamped(store_url: str) -> None:
    outcome = on(store_url, migrations.prepare)
    assert outcome == migrations.Outcome(None, migrations.head())
    assert on(store_url, differences) == []
    assert on(store_url, migrations.current_revision) == migrations.head()


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "before-migrations"])
@pytest.mark.parametrize("revision", EARLIER)
def test_an_earlier_store_is_upgraded_with_its_data(
    store_url: str, revision: str, versioned: bool
) -> None:
    on(store_url, at_revision(revision, versioned))
    on(store_url, fill(revision))
    outcome = on(store_url, migrations.prepare)
    before = revision
    if not versioned and store_url.startswith("sqlite") and revision == "0002":
        # SQLite never changed a column type: a store with owners already matches 0003.
        before = "0003"
    assert outcome == migrations.Outcome(before, migrations.head(), None if versioned else before)
    assert on(store_url, differences) == []
    assert on(store_url, migrations.current_revision) == migrations.head()
    kept_data(store_url)


def test_a_postgresql_store_of_the_last_release_before_migrations_gets_its_text_columns(
    store_url: str,
) -> None:
    """The shape create_all left on PostgreSQL: owner added by hand, the idempotency table
    added, the old VARCHAR columns kept."""
    on(store_url, at_revision("0002", versioned=False))
    on(store_url, lambda connection: Base.metadata.tables["client_messages"].create(connection))
    on(store_url, fill("0002"))
    outcome = on(store_url, migrations.prepare)
    expected = "0002" if store_url.startswith("postgresql") else "0004"
    assert outcome == migrations.Outcome(expected, migrations.head(), expected)
    assert on(store_url, differences) == []
    kept_data(store_url)


def test_without_upgrade_an_earlier_store_is_refused_and_left_as_it_was(store_url: str) -> None:
    on(store_url, at_revision("0001", versioned=True))
    with pytest.raises(migrations.SchemaBehind) as refused:
        on(store_url, lambda connection: migrations.prepare(connection, upgrade=False))
    assert (refused.value.current, refused.value.head) == ("0001", migrations.head())
    assert on(store_url, migrations.current_revision) == "0001"
    columns = on(store_url, lambda c: [col["name"] for col in inspect(c).get_columns("sessions")])
    assert "owner" not in columns


def test_a_store_of_a_newer_version_is_refused(store_url: str) -> None:
    on(store_url, migrations.prepare)
    on(store_url, lambda c: c.execute(text("UPDATE alembic_version SET version_num = '9999'")))
    with pytest.raises(migrations.SchemaUnknown):
        on(store_url, migrations.prepare)


# --- through the commands -------------------------------------------------------------------


def test_serve_with_no_migrate_refuses_an_earlier_store_naming_the_command(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
    on(url, at_revision("0002", versioned=True))
    result = run_serve(
        "--runtime-port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path), "--no-migrate"
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"sessionlab serve: --data-dir {tmp_path}: the store's schema is at revision 0002, this "
        f"version needs {migrations.head()}; upgrade it with `sessionlab migrate --data-dir "
        f"{tmp_path}`, or serve without --no-migrate\n"
    )
    assert on(url, migrations.current_revision) == "0002"


def test_serve_upgrades_an_earlier_store_and_says_so(store_url: str, tmp_path: Path) -> None:
    on(store_url, at_revision("0001", versioned=False))
    on(store_url, fill("0001"))
    where = (
        ["--data-dir", str(tmp_path)]
        if store_url.startswith("sqlite")
        else ["--data-dir", str(tmp_path), "--database-url", store_url]
    )
    served = Serving("--runtime-port", "0", "--gateway-port", "0", *where)
    try:
        assert f"schema upgraded from 0001 to {migrations.head()}" in served.banner_text
    finally:
        code, log = served.stop()
    assert code == 0, log
    kept_data(store_url)


def test_migrate_upgrades_a_store_then_finds_it_current(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
    on(url, at_revision("0002", versioned=True))
    on(url, fill("0002"))
    first = run_migrate("--data-dir", str(tmp_path))
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == f"store upgraded from revision 0002 to {migrations.head()}\n"
    again = run_migrate("--database-url", url)
    assert again.stdout == f"store already at revision {migrations.head()}\n"
    kept_data(url)


def run_migrate(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [SESSIONLAB, "migrate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_environment(),
    )
