"""The session store: SQLAlchemy 2 async, SQLite (WAL) by default, PostgreSQL by URL alone."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite
from sqlalchemy import (
    Insert,
    Row,
    Select,
    String,
    bindparam,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from contract.bodies import AgentSwitchRecord, Message
from contract.ids import new_server_session_id
from reference import migrations
from reference.clock import utc_now
from reference.runtime.agents import DEFAULT_AGENT
from reference.runtime.group_commit import GroupCommit
from reference.runtime.message_body import message_body, message_fields
from reference.runtime.portable_text import PORTABLE_TEXT
from reference.runtime.script_agent import Basis, PendingCall, Turn
from reference.runtime.tables import (
    AgentSwitchRow,
    ClientMessageRow,
    MessageRow,
    SessionRow,
    SessionShareRow,
    ToolCallRow,
)
from reference.users import Access


class SessionNotFound(LookupError):
    pass


class StaleTurn(Exception):
    """What a turn was decided on changed before it could be stored: decide it again."""


ID_MAX = 64


def is_storable(session_id: str) -> bool:
    # PostgreSQL refuses NUL in text outright; the column holds 64 characters.
    return "\x00" not in session_id and len(session_id) <= ID_MAX


def _storable(session_id: str) -> None:
    """An id no row can have is simply not found."""
    if not is_storable(session_id):
        raise SessionNotFound(session_id)


TITLE_MAX = 200


@dataclass(frozen=True)
class SessionState:
    session_id: str
    created_at: str
    last_activity: str
    current_agent: str
    message_count: int
    switch_count: int
    title: str | None = None
    # User auth (X-AUTH-1): the creator; None when made with user auth off.
    owner: str | None = None


@dataclass(frozen=True)
class ClientMessage:
    """A named user message's reply as it was streamed (X-IDEM-1)."""

    client_message_id: str
    # sha256 of the message's role and content: a name reused for another message shows.
    digest: str
    frames: list[dict[str, Any]]
    error: str | None = None


@dataclass(frozen=True)
class HistoryRows:
    """A history as the JSON it shows: the messages as one JSON array (each as Message serialises
    it), each agent switch as the object AgentSwitchRecord serialises to."""

    state: SessionState
    messages_json: str
    message_count: int
    agent_history: list[dict[str, Any]]


@dataclass(frozen=True)
class SearchHit:
    session: SessionState
    snippet: str


def _state(row: SessionRow | Row[Any]) -> SessionState:
    return SessionState(
        session_id=row.id,
        created_at=row.created_at,
        last_activity=row.last_activity,
        current_agent=row.current_agent,
        message_count=row.message_count,
        switch_count=row.switch_count,
        title=row.title,
        owner=row.owner,
    )


def _client_message(row: ClientMessageRow) -> ClientMessage:
    return ClientMessage(
        client_message_id=row.client_message_id,
        digest=row.digest,
        frames=list(row.frames),
        error=row.error,
    )


_INSERT_SESSION = insert(SessionRow)
_SESSION = select(SessionRow.__table__).where(SessionRow.id == bindparam("id"))
_MESSAGE_FIELDS = (
    select(
        MessageRow.role,
        MessageRow.content,
        MessageRow.name,
        MessageRow.tool_call_id,
        # As stored: most messages have none, and decoding "null" a thousand times is not free.
        type_coerce(MessageRow.tool_calls, String),
    )
    .where(MessageRow.session_id == bindparam("session_id"))
    .order_by(MessageRow.seq)
)
_MESSAGE_BODIES = (
    select(MessageRow.body)
    .where(MessageRow.session_id == bindparam("session_id"))
    .order_by(MessageRow.seq)
)
_SWITCH_FIELDS = (
    select(
        AgentSwitchRow.from_agent,
        AgentSwitchRow.to_agent,
        AgentSwitchRow.reason,
        AgentSwitchRow.switched_at,
    )
    .where(AgentSwitchRow.session_id == bindparam("session_id"))
    .order_by(AgentSwitchRow.seq)
)


# The SQL of a select as SQLite's driver takes it, and the order of its parameters.
_SQLITE_SQL: dict[Select[*tuple[Any, ...]] | Insert, tuple[str, list[str]]] = {}


async def _fetch_all(
    connection: AsyncConnection,
    statement: Select[*tuple[Any, ...]],
    parameters: dict[str, Any],
) -> Sequence[Sequence[Any]]:
    """The rows of a select, as tuples of the columns' values.

    On SQLite in one round trip to the driver's thread (aiosqlite's execute_fetchall) rather than
    four (cursor, execute, fetch, close): a history read makes three selects. Only for selects
    whose columns SQLite returns as they are stored (no type processing on that dialect).
    """
    if connection.dialect.name != "sqlite":
        return list((await connection.execute(statement, parameters)).all())
    driver, sql, names = await _compiled_for_sqlite(connection, statement)
    return list(await driver.execute_fetchall(sql, [parameters[name] for name in names]))


async def _compiled_for_sqlite(
    connection: AsyncConnection, statement: Select[*tuple[Any, ...]] | Insert
) -> tuple[aiosqlite.Connection, str, list[str]]:
    """The driver connection under a pooled SQLite connection, and the statement as it takes it."""
    if statement not in _SQLITE_SQL:
        compiled = statement.compile(dialect=connection.dialect)
        _SQLITE_SQL[statement] = (str(compiled), list(compiled.positiontup or []))
    sql, names = _SQLITE_SQL[statement]
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, aiosqlite.Connection)
    return driver, sql, names


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL keeps every commit across a crash or kill of the process (R-CREATE-4);
    # only a power cut can lose the last ones, and FULL would fsync on every create.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
    # SQLite's lower() folds ASCII only; search must match "ÄPFEL" to "äpfel" as PostgreSQL does.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


async def _still_holds(db: AsyncSession, session: SessionRow, basis: Basis) -> bool:
    """Whether a turn's basis holds, read under the session's lock (every turn takes it)."""
    if session.current_agent != basis.agent:
        return False
    if basis.call_id is None or not is_storable(basis.call_id):
        return True
    call = await db.get(ToolCallRow, basis.call_id, populate_existing=True)
    state = None if call is None or call.session_id != session.id else call.state
    return state == basis.call_state


def _visible_to(user: str) -> Any:
    """Sessions a user owns or has been shared: the only ones a user may see (X-AUTH-1)."""
    shared = select(SessionShareRow.session_id).where(SessionShareRow.user == user)
    return or_(SessionRow.owner == user, SessionRow.id.in_(shared))


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def snippet(content: str, needle: str, width: int = 80) -> str:
    """Text around the first case-insensitive match, with ellipses where it was cut."""
    at = content.lower().find(needle.lower())
    start = max(0, at - width // 2) if at >= 0 else 0
    end = min(len(content), start + width)
    return ("…" if start else "") + content[start:end] + ("…" if end < len(content) else "")


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer; queueing writers here avoids its busy/snapshot errors.
        # PostgreSQL takes row locks instead (SELECT ... FOR UPDATE below).
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._creates = (
            GroupCommit(engine, self._write_lock, _INSERT_SESSION, _compiled_for_sqlite)
            if self._write_lock is not None
            else None
        )

    @classmethod
    async def open(cls, url: str, upgrade: bool = True) -> "Store":
        """Open the store, its schema made or upgraded (reference.migrations); with `upgrade`
        off, a schema behind this version's raises SchemaBehind instead."""
        # A ping before each checkout finds a connection PostgreSQL dropped; a SQLite file's
        # connection cannot be dropped, and the ping was a third of a create's round trips.
        engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(migrations.prepare, upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            db = await stack.enter_async_context(self._sessions())
            await stack.enter_async_context(db.begin())
            yield db

    @contextlib.asynccontextmanager
    async def _writing_rows(self) -> AsyncIterator[AsyncConnection]:
        """As _writing, for Core statements: no ORM unit of work around a single insert."""
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            yield await stack.enter_async_context(self.engine.begin())

    async def create_session(
        self, session_id: str | None = None, owner: str | None = None
    ) -> SessionState:
        for _ in range(5):
            now = utc_now()
            state = SessionState(
                session_id=session_id or new_server_session_id(),
                created_at=now,
                last_activity=now,
                current_agent=DEFAULT_AGENT,
                message_count=0,
                switch_count=0,
                owner=owner,
            )
            row = {
                "id": state.session_id,
                "created_at": now,
                "last_activity": now,
                "current_agent": DEFAULT_AGENT,
                "message_count": 0,
                "switch_count": 0,
                "title": None,
                "owner": owner,
            }
            try:
                if self._creates is not None:
                    await self._creates.insert(row)
                else:
                    async with self._writing_rows() as connection:
                        await connection.execute(_INSERT_SESSION, row)
            except IntegrityError:
                if session_id is not None:
                    raise
                continue  # a random id collided: draw another
            return state
        raise RuntimeError("could not draw a free session id")

    async def get_session(self, session_id: str) -> SessionState:
        _storable(session_id)
        async with self.engine.connect() as connection:
            row = (await connection.execute(_SESSION, {"id": session_id})).first()
        if row is None:
            raise SessionNotFound(session_id)
        return _state(row)

    async def list_sessions(self, user: str | None = None) -> list[SessionState]:
        """Every session, or with a user only those the user owns or has been shared."""
        query = select(SessionRow).order_by(SessionRow.last_activity.desc(), SessionRow.id)
        if user is not None:
            query = query.where(_visible_to(user))
        async with self._sessions() as db:
            return [_state(row) for row in await db.scalars(query)]

    async def access(self, session_id: str, user: str) -> tuple[SessionState, Access]:
        """What a user may do with a session; SessionNotFound when there is no such session.

        A session made with user auth off has no owner: no user owns it, so it stays hidden.
        """
        _storable(session_id)
        async with self._sessions() as db:
            row = await db.get(SessionRow, session_id)
            if row is None:
                raise SessionNotFound(session_id)
            if row.owner == user:
                return _state(row), "owner"
            share = await db.get(SessionShareRow, (session_id, user))
            return _state(row), "reader" if share is not None else "none"

    async def share(self, session_id: str, user: str) -> list[str]:
        """Share with `user` (sharing twice is sharing once); the users it is shared with."""
        _storable(session_id)
        async with self._writing() as db:
            if await db.get(SessionRow, session_id) is None:
                raise SessionNotFound(session_id)
            if await db.get(SessionShareRow, (session_id, user)) is None:
                db.add(SessionShareRow(session_id=session_id, user=user))
        return await self.shares(session_id)

    async def unshare(self, session_id: str, user: str) -> bool:
        """False when the session was not shared with `user`."""
        async with self._writing() as db:
            share = await db.get(SessionShareRow, (session_id, user))
            if share is None:
                return False
            await db.delete(share)
            return True

    async def shares(self, session_id: str) -> list[str]:
        async with self._sessions() as db:
            users = await db.scalars(
                select(SessionShareRow.user)
                .where(SessionShareRow.session_id == session_id)
                .order_by(SessionShareRow.user)
            )
            return list(users)

    async def count_sessions(self) -> int:
        async with self._sessions() as db:
            return int(await db.scalar(select(func.count()).select_from(SessionRow)) or 0)

    async def messages(self, session_id: str) -> list[Message]:
        return [Message(**fields) for fields in await self.message_fields(session_id)]

    async def message_fields(self, session_id: str) -> list[dict[str, Any]]:
        """The session's messages as the JSON objects the history shows, absent fields left out.

        Plain rows of a Core select, not ORM objects and a model each: those took 40 ms of CPU
        for a 1,000-message history (docs/performance.md).
        """
        async with self.engine.connect() as connection:
            rows = await connection.execute(_MESSAGE_FIELDS, {"session_id": session_id})
            return [message_fields(*row) for row in rows]

    async def history(self, session_id: str) -> HistoryRows:
        """The session, its messages (as message_fields) and its agent switches, read on one
        connection; SessionNotFound when there is no such session."""
        _storable(session_id)
        async with self.engine.connect() as connection:
            found = await _fetch_all(connection, _SESSION, {"id": session_id})
            if not found:
                raise SessionNotFound(session_id)
            session = dict(zip(_SESSION.selected_columns.keys(), found[0], strict=True))
            bodies = [
                body
                for (body,) in await _fetch_all(
                    connection, _MESSAGE_BODIES, {"session_id": session_id}
                )
            ]
            if None in bodies:
                # Rows written by a process older than the column: built from their fields.
                rows = await _fetch_all(connection, _MESSAGE_FIELDS, {"session_id": session_id})
                bodies = [message_body(*row) for row in rows]
            switches = await _fetch_all(connection, _SWITCH_FIELDS, {"session_id": session_id})
            keys = _SWITCH_FIELDS.selected_columns.keys()
            return HistoryRows(
                SessionState(
                    session_id=session["id"],
                    created_at=session["created_at"],
                    last_activity=session["last_activity"],
                    current_agent=session["current_agent"],
                    message_count=session["message_count"],
                    switch_count=session["switch_count"],
                    title=session["title"],
                    owner=session["owner"],
                ),
                "[" + ",".join(bodies) + "]",
                len(bodies),
                [dict(zip(keys, row, strict=True)) for row in switches],
            )

    async def agent_history(self, session_id: str) -> list[AgentSwitchRecord]:
        async with self._sessions() as db:
            rows = await db.scalars(
                select(AgentSwitchRow)
                .where(AgentSwitchRow.session_id == session_id)
                .order_by(AgentSwitchRow.seq)
            )
            return [
                AgentSwitchRecord(
                    from_agent=row.from_agent,
                    to_agent=row.to_agent,
                    reason=row.reason,
                    switched_at=row.switched_at,
                )
                for row in rows
            ]

    async def delete_session(self, session_id: str) -> None:
        _storable(session_id)
        async with self._writing() as db:
            row = await db.get(SessionRow, session_id)
            if row is None:
                raise SessionNotFound(session_id)
            # Children first: the cascade is declared, but SQLite enforces it only per connection.
            # Names of messages go with their session: the same name may serve a new one.
            for table in (
                MessageRow,
                AgentSwitchRow,
                ToolCallRow,
                SessionShareRow,
                ClientMessageRow,
            ):
                await db.execute(delete(table).where(table.session_id == session_id))
            await db.delete(row)

    async def rename_session(self, session_id: str, title: str) -> SessionState:
        _storable(session_id)
        async with self._writing() as db:
            row = await db.get(SessionRow, session_id)
            if row is None:
                raise SessionNotFound(session_id)
            row.title = title
            return _state(row)

    async def search(
        self, needle: str, limit: int = 50, user: str | None = None
    ) -> list[SearchHit]:
        """Sessions with a message containing `needle` (case-insensitive), most recent first.

        With a user, only sessions the user may see: a hit would show another user's text.
        """
        async with self._sessions() as db:
            folded = needle.lower()
            # Typed as the column, so that the needle is stored-escaped as the content is.
            lowered = func.lower(MessageRow.content, type_=PORTABLE_TEXT)
            matches = await db.execute(
                select(MessageRow.session_id, MessageRow.content)
                .where(lowered.contains(folded, autoescape=True))
                .order_by(MessageRow.session_id, MessageRow.seq.desc())
            )
            latest: dict[str, str] = {}
            for session_id, content in matches:
                # An escaped needle can match across an escape ("0" in an escaped NUL): recheck.
                if content is not None and folded in content.lower():
                    latest.setdefault(session_id, content)
            if not latest:
                return []
            query = (
                select(SessionRow)
                .where(SessionRow.id.in_(latest))
                .order_by(SessionRow.last_activity.desc(), SessionRow.id)
                .limit(limit)
            )
            if user is not None:
                query = query.where(_visible_to(user))
            rows = await db.scalars(query)
            return [SearchHit(_state(row), snippet(latest[row.id], needle)) for row in rows]

    async def tool_call(self, session_id: str, call_id: str) -> PendingCall | None:
        if not is_storable(call_id):
            return None
        async with self._sessions() as db:
            row = await db.get(ToolCallRow, call_id)
            if row is None or row.session_id != session_id:
                return None
            return PendingCall(
                call_id=row.call_id,
                tool_name=row.tool_name,
                arguments=row.arguments,
                requires_approval=row.requires_approval,
                state=row.state,
                decision=row.decision,
                feedback=row.feedback,
            )

    async def client_message(self, session_id: str, client_message_id: str) -> ClientMessage | None:
        """The reply stored for a named user message of the session, if it was stored."""
        async with self._sessions() as db:
            row = await db.get(ClientMessageRow, (session_id, client_message_id))
            return None if row is None else _client_message(row)

    async def apply_turn(
        self, session_id: str, turn: Turn, named: ClientMessage | None = None
    ) -> ClientMessage | None:
        """Write all a turn changes in one transaction: it is there entirely or not at all.

        `named`: the turn answers a user message the IDE named (X-IDEM-1), stored with it. When
        that name was stored before, by an earlier send or a concurrent one, nothing of this turn
        is stored and the earlier reply is returned instead.
        """
        try:
            return await self._apply_turn(session_id, turn, named)
        except IntegrityError:
            if named is None:
                raise
            # Another process stored the same name between our check and our commit.
            earlier = await self.client_message(session_id, named.client_message_id)
            if earlier is None:
                raise
            return earlier

    async def _apply_turn(
        self, session_id: str, turn: Turn, named: ClientMessage | None
    ) -> ClientMessage | None:
        async with self._writing() as db:
            session = await db.scalar(
                select(SessionRow).where(SessionRow.id == session_id).with_for_update()
            )
            if session is None:
                raise SessionNotFound(session_id)
            now = utc_now()
            if named is not None:
                # Under the session's lock: a concurrent resend waits here, then finds this row.
                earlier = await db.get(ClientMessageRow, (session_id, named.client_message_id))
                if earlier is not None:
                    return _client_message(earlier)
            if turn.basis is not None and not await _still_holds(db, session, turn.basis):
                raise StaleTurn(session_id)
            if named is not None:
                db.add(
                    ClientMessageRow(
                        session_id=session_id,
                        client_message_id=named.client_message_id,
                        digest=named.digest,
                        frames=named.frames,
                        error=named.error,
                        created_at=now,
                    )
                )
            for offset, message in enumerate(turn.messages):
                db.add(
                    MessageRow(
                        session_id=session_id,
                        seq=session.message_count + offset,
                        role=message.role,
                        content=message.content,
                        name=message.name,
                        tool_call_id=message.tool_call_id,
                        tool_calls=message.tool_calls,
                        created_at=now,
                        body=message_body(
                            message.role,
                            message.content,
                            message.name,
                            message.tool_call_id,
                            message.tool_calls,
                        ),
                    )
                )
            session.message_count += len(turn.messages)
            for call in turn.calls:
                await db.merge(
                    ToolCallRow(
                        call_id=call.call_id,
                        session_id=session_id,
                        tool_name=call.tool_name,
                        arguments=call.arguments,
                        requires_approval=call.requires_approval,
                        state=call.state,
                        decision=call.decision,
                        feedback=call.feedback,
                    )
                )
            if turn.switch is not None:
                db.add(
                    AgentSwitchRow(
                        session_id=session_id,
                        seq=session.switch_count,
                        from_agent=turn.switch.from_agent,
                        to_agent=turn.switch.to_agent,
                        reason=turn.switch.reason,
                        switched_at=now,
                    )
                )
                session.switch_count += 1
                session.current_agent = turn.switch.to_agent
            session.last_activity = now
        return None
