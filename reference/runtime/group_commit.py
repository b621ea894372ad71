"""Creates on SQLite committed together: one transaction for every create waiting at that moment.

SQLite has one writer, so creates queue behind one another, and each one's insert and commit
are round trips to the driver's thread: under load, a create's latency was mostly the round
trips of the creates before it. Here the first create that finds no batch being written writes
every create queued meanwhile in one transaction (one executemany, one commit). Each create is
still committed before it is answered (docs/decisions.md, "Durability").
"""

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
from sqlalchemy import Insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# The driver connection of a pooled connection, and the statement compiled for SQLite.
Compiled = Callable[
    [AsyncConnection, Insert], Awaitable[tuple[aiosqlite.Connection, str, list[str]]]
]


class GroupCommit:
    def __init__(
        self, engine: AsyncEngine, write_lock: asyncio.Lock, statement: Insert, compiled: Compiled
    ) -> None:
        self._engine = engine
        self._write_lock = write_lock
        self._statement = statement
        self._compiled = compiled
        self._queued: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        # The task writing batches, not any create's own: a create whose client left must not
        # strand those queued behind it.
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, row: dict[str, Any]) -> None:
        """The row inserted and committed; IntegrityError as SQLAlchemy raises it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((row, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())
        # Shielded: a caller that gives up must not cancel the outcome the writer will settle.
        await asyncio.shield(done)

    async def _write_queued(self) -> None:
        try:
            async with self._write_lock, self._engine.connect() as connection:
                driver, sql, names = await self._compiled(connection, self._statement)
                while self._queued:
                    batch, self._queued = self._queued, []
                    await _write_batch(driver, sql, names, batch)
        except BaseException as exc:
            for _, done in self._queued:
                _settle(done, exc)
            self._queued = []
            if not isinstance(exc, Exception):
                raise
        finally:
            self._writer = None
            # Queued while the connection was being given back.
            if self._queued:
                self._writer = asyncio.create_task(self._write_queued())


async def _write_batch(
    driver: aiosqlite.Connection,
    sql: str,
    names: list[str],
    batch: list[tuple[dict[str, Any], "asyncio.Future[None]"]],
) -> None:
    try:
        await _write(driver, sql, [[row[name] for name in names] for row, _ in batch])
    except sqlite3.IntegrityError:
        # One row of the batch collides (a drawn id taken): each alone, so that only its own
        # create fails.
        for row, done in batch:
            await _settle_alone(driver, sql, names, row, done)
    except BaseException as exc:
        for _, done in batch:
            _settle(done, exc)
        raise
    else:
        for _, done in batch:
            _settle(done)


async def _write(driver: aiosqlite.Connection, sql: str, rows: list[list[Any]]) -> None:
    try:
        await driver.executemany(sql, rows)
        await driver.commit()
    except BaseException:
        await driver.rollback()
        raise


async def _settle_alone(
    driver: aiosqlite.Connection,
    sql: str,
    names: list[str],
    row: dict[str, Any],
    done: asyncio.Future[None],
) -> None:
    try:
        await _write(driver, sql, [[row[name] for name in names]])
    except sqlite3.IntegrityError as exc:
        _settle(done, IntegrityError(sql, row, exc))
    else:
        _settle(done)


def _settle(done: "asyncio.Future[None]", failure: BaseException | None = None) -> None:
    if done.done():
        return
    if failure is None:
        done.set_result(None)
    else:
        done.set_exception(failure)
