"""Creates on SQLite committed in batches (reference/runtime/group_commit.py): each create is
stored and answered once, a colliding id fails only its own create, and a create whose caller
gave up strands none queued behind it. On real SQLite files."""

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from reference.runtime.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}")
    yield opened  # type: ignore[misc]
    await opened.close()


async def test_many_creates_at_once_are_each_stored_once(store: Store) -> None:
    created = await asyncio.gather(*(store.create_session() for _ in range(200)))
    ids = {state.session_id for state in created}
    assert len(ids) == 200
    assert {state.session_id for state in await store.list_sessions()} == ids
    assert await store.count_sessions() == 200


async def test_a_colliding_id_fails_only_its_own_create(store: Store) -> None:
    taken = (await store.create_session()).session_id
    outcomes = await asyncio.gather(
        store.create_session(),
        store.create_session(session_id=taken),
        store.create_session(session_id="session_00000000000000aa"),
        store.create_session(),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], IntegrityError)
    fine = [outcome for i, outcome in enumerate(outcomes) if i != 1]
    assert not any(isinstance(outcome, BaseException) for outcome in fine)
    assert await store.count_sessions() == 4
    assert (await store.get_session("session_00000000000000aa")).message_count == 0


async def test_a_create_given_up_strands_none_queued_behind_it(store: Store) -> None:
    first = asyncio.ensure_future(store.create_session())
    rest = [asyncio.ensure_future(store.create_session()) for _ in range(20)]
    await asyncio.sleep(0)
    first.cancel()
    created = await asyncio.wait_for(asyncio.gather(*rest), timeout=30)
    assert len({state.session_id for state in created}) == 20
    # The one given up may or may not have been written; the others all were.
    assert await store.count_sessions() in (20, 21)
    more = await asyncio.wait_for(store.create_session(), timeout=30)
    assert (await store.get_session(more.session_id)).session_id == more.session_id
