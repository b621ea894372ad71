"""The reference Agent Runtime: `create_app(settings)`; run with `uvicorn --factory`."""

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from pydantic_core import to_json
from sqlalchemy.exc import IntegrityError

from contract import __version__, sse
from contract.bodies import (
    AgentInfo,
    CreatedSession,
    CurrentAgent,
    Health,
    History,
    RenameRequest,
    SearchResult,
    SearchResults,
    SessionExport,
    SessionInfo,
    SessionList,
    StreamDone,
    StreamError,
    StreamRequest,
)
from contract.frames import UserMessageFrame
from contract.routes import (
    CREATE_SESSION,
    CURRENT_AGENT,
    DELETE_SESSION,
    EXPORT,
    HEALTH,
    HISTORY,
    HISTORY_HEAD,
    LIST_AGENTS,
    LIST_SESSIONS,
    MESSAGE_STREAM,
    RENAME_SESSION,
    SEARCH,
)
from reference.asgi_guards import BodyLimit, DepthLimit, KeyGuard
from reference.clock import utc_now
from reference.errors import error_response, install_error_handlers
from reference.runtime import sharing
from reference.runtime.agents import AGENTS
from reference.runtime.export import transcript_markdown
from reference.runtime.script_agent import respond
from reference.runtime.sharing import User, readable, writable
from reference.runtime.store import (
    ClientMessage,
    SessionNotFound,
    SessionState,
    StaleTurn,
    Store,
    is_storable,
)
from reference.server import ServerLimits, attach_limits
from reference.settings import RuntimeSettings

log = logging.getLogger("sessionlab.runtime")
SERVICE = "sessionlab-runtime"


# Coroutines though they do not await: FastAPI runs a plain function dependency in a worker
# thread, a thread hop per request.
async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_settings(request: Request) -> RuntimeSettings:
    settings: RuntimeSettings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[RuntimeSettings, Depends(get_settings)]

router = APIRouter()


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, f"session not found: {exc}")


@router.get(HEALTH.template)
async def health() -> Health:
    return Health(status="healthy", service=SERVICE, version=__version__)


@router.post(CREATE_SESSION.template)
async def create_session(request: Request, store: StoreDep, user: User = None) -> CreatedSession:
    # The body is optional and carries nothing yet; anything but a JSON object is refused.
    raw = await request.body()
    if raw.strip():
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise HTTPException(422, "the body, when given, must be a JSON object")
    log.info("Creating new session")
    state = await store.create_session(owner=user)
    log.info("Created new session: %s", state.session_id)
    return CreatedSession(
        session_id=state.session_id,
        message_count=0,
        current_agent="orchestrator",
        created_at=state.created_at,
    )


def _info(state: SessionState, user: str | None = None) -> SessionInfo:
    # With users a list mixes own and shared sessions: the owner (an extra field of the lax
    # body) tells the IDE which is which. Without users the body stays exactly as it was.
    extra = {"owner": state.owner} if user is not None else {}
    return SessionInfo(
        session_id=state.session_id,
        message_count=state.message_count,
        last_activity=state.last_activity,
        current_agent=state.current_agent,
        title=state.title,
        **extra,
    )


@router.get(LIST_SESSIONS.template)
async def list_sessions(store: StoreDep, user: User = None) -> SessionList:
    sessions = [_info(state, user) for state in await store.list_sessions(user)]
    return SessionList(sessions=sessions, total=len(sessions))


@router.get(HISTORY.template, response_model=History)
async def history(session_id: str, store: StoreDep, user: User = None) -> Response:
    if user is not None:
        await readable(store, session_id, user)
    rows = await store.history(session_id)
    # The History body from stored message texts, the rest serialised by pydantic's own JSON
    # writer: the bytes a History model would give, without a model and a validation per message
    # (docs/performance.md; tests/test_reference_speed_paths.py holds them equal). The messages
    # go between two halves of the body written without them, in the model's field order.
    head = to_json({"session_id": session_id})[:-1]
    tail = to_json(
        {
            "message_count": rows.message_count,
            "last_activity": rows.state.last_activity,
            "current_agent": rows.state.current_agent,
            "agent_history": rows.agent_history,
        }
    )[1:]
    body = b"".join((head, b',"messages":', rows.messages_json.encode(), b",", tail))
    return Response(body, media_type="application/json")


@router.head(HISTORY_HEAD.template)
async def history_exists(session_id: str, store: StoreDep, user: User = None) -> Response:
    """Whether the history is there (200) or not (404), without reading it: the gateway's check
    before it accepts a socket (W-CONN-2), which must not cost more as a session grows."""
    await readable(store, session_id, user)
    return Response(status_code=200)


@router.get(SEARCH.template)
async def search(
    store: StoreDep, q: Annotated[str, Query(min_length=1, max_length=500)], user: User = None
) -> SearchResults:
    hits = await store.search(q, user=user)
    results = [
        SearchResult(
            session_id=hit.session.session_id,
            title=hit.session.title,
            last_activity=hit.session.last_activity,
            snippet=hit.snippet,
        )
        for hit in hits
    ]
    return SearchResults(results=results, total=len(results))


@router.delete(DELETE_SESSION.template, status_code=204)
async def delete_session(session_id: str, store: StoreDep, user: User = None) -> Response:
    await writable(store, session_id, user)
    await store.delete_session(session_id)
    return Response(status_code=204)


@router.patch(RENAME_SESSION.template)
async def rename_session(
    session_id: str, body: RenameRequest, store: StoreDep, user: User = None
) -> SessionInfo:
    await writable(store, session_id, user)
    return _info(await store.rename_session(session_id, body.title), user)


@router.get(EXPORT.template, response_model=None)
async def export_session(
    session_id: str,
    store: StoreDep,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
    user: User = None,
) -> Response:
    state = await readable(store, session_id, user)
    messages = await store.messages(session_id)
    if format == "markdown":
        return Response(
            transcript_markdown(state, messages),
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{session_id}.md"'},
        )
    switches = await store.agent_history(session_id)
    document = SessionExport(
        session_id=session_id,
        title=state.title,
        exported_at=utc_now(),
        message_count=len(messages),
        messages=messages,
        agent_history=[record.model_dump() for record in switches],
    )
    return Response(
        document.model_dump_json(),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{session_id}.json"'},
    )


@router.get(LIST_AGENTS.template)
async def agents() -> list[AgentInfo]:
    return list(AGENTS.values())


@router.get(CURRENT_AGENT.template)
async def current_agent(session_id: str, store: StoreDep, user: User = None) -> CurrentAgent:
    state = await readable(store, session_id, user)
    switches = await store.agent_history(session_id)
    return CurrentAgent(
        session_id=session_id,
        current_agent=state.current_agent,
        agent_history=[record.model_dump() for record in switches],
        switch_count=len(switches),
    )


def _new_call_id() -> str:
    return f"call_{secrets.token_hex(8)}"


def _digest(frame: UserMessageFrame) -> str:
    return hashlib.sha256(json.dumps([frame.role, frame.content]).encode()).hexdigest()


def _resent(
    earlier: ClientMessage, digest: str, session_id: str, settings: RuntimeSettings
) -> StreamingResponse:
    """A resend's answer: the stored reply, unless the name was given to another message."""
    log.info(
        "Resent message %r of %r answered from the store", earlier.client_message_id, session_id
    )
    if earlier.digest != digest:
        error = (
            f"client_message_id {earlier.client_message_id!r} already names another message of "
            "this session; a new message needs a new id"
        )
        return _event_stream([], error, settings.frame_delay)
    return _event_stream(earlier.frames, earlier.error, settings.frame_delay)


def _event_stream(
    frames: list[dict[str, Any]], error: str | None, frame_delay: float
) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for frame in frames:
            if frame_delay:
                await asyncio.sleep(frame_delay)
            yield sse.encode_event(sse.MESSAGE, frame)
        if error is not None:
            yield sse.encode_event(sse.ERROR, StreamError(error=error).model_dump())
        else:
            yield sse.encode_event(sse.DONE, StreamDone().model_dump())

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@router.post(MESSAGE_STREAM.template, response_model=None)
async def message_stream(
    request: Request, store: StoreDep, settings: SettingsDep, user: User = None
) -> StreamingResponse | JSONResponse:
    try:
        body = StreamRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        return error_response(422, f"invalid stream request: {problems}")
    session_id = body.session_id
    try:
        state = await writable(store, session_id, user)
    except SessionNotFound:
        if settings.strict:
            raise
        if not is_storable(session_id):
            return error_response(422, "a session id of at most 64 characters, without NUL")
        # Tolerant: the message creates the session it names, owned by whoever sent it.
        try:
            state = await store.create_session(session_id, owner=user)
        except IntegrityError:
            # Made meanwhile by a concurrent message, or another user's: then this is a 404.
            state = await writable(store, session_id, user)
    message = body.message
    # X-IDEM-1: a user message the IDE named is answered once; a resend gets the stored reply.
    name = message.client_message_id if isinstance(message, UserMessageFrame) else None
    digest = _digest(message) if isinstance(message, UserMessageFrame) else ""
    if name is not None:
        earlier = await store.client_message(session_id, name)
        if earlier is not None:
            return _resent(earlier, digest, session_id, settings)
    call_id = getattr(message, "call_id", None)
    while True:
        call = await store.tool_call(session_id, call_id) if call_id else None
        turn = respond(message, state.current_agent, call, _new_call_id)
        frames = [frame.model_dump(mode="json", exclude_none=True) for frame in turn.frames]
        named = None if name is None else ClientMessage(name, digest, frames, turn.error)
        try:
            # Everything is stored before the first byte goes out: an acknowledged turn is never
            # lost.
            earlier = await store.apply_turn(session_id, turn, named)
            break
        except StaleTurn:
            # Another turn of the session, on any runtime process, was stored since this one
            # was read: decided again on what it left. Each retry follows a stored turn.
            state = await store.get_session(session_id)
    if earlier is not None:
        # A concurrent send of the same message was stored first: this one is its resend.
        return _resent(earlier, digest, session_id, settings)
    return _event_stream(frames, turn.error, settings.frame_delay)


def create_app(settings: RuntimeSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.state.store = await Store.open(settings.resolved_database_url())
        try:
            yield
        finally:
            await app.state.store.close()

    app = FastAPI(
        title="sessionlab reference Agent Runtime", version=__version__, lifespan=lifespan
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_exception_handler(SessionNotFound, _not_found)
    app.include_router(router)
    app.include_router(sharing.router)
    # Innermost: a body is read whole only once the key lets the request in.
    app.add_middleware(DepthLimit)
    if settings.internal_key is not None:
        app.add_middleware(KeyGuard, key=settings.internal_key.get_secret_value().encode())
    app.add_middleware(BodyLimit, max_bytes=settings.max_bytes)
    attach_limits(
        app,
        ServerLimits(
            max_bytes=settings.max_bytes,
            head_timeout=settings.head_timeout,
            max_connections=settings.max_connections,
        ),
    )
    return app
