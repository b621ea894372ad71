"""Users and sharing in the runtime (X-AUTH-1, X-SHARE-1): who may read or write a session.

The gateway names the user in `X-Sessionlab-User`; without it user auth is off and every caller
may do everything, as before users existed. A user who may not see a session gets the same 404 as
for an unknown id, so an answer never tells whether someone else's session exists. A user it is
shared with may read it; a write by that user is a 403, since the user knows it exists anyway.
"""

from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from contract.routes import ACCESS, LIST_SHARES, SHARE, UNSHARE
from reference.runtime.store import SessionNotFound, SessionState, Store
from reference.users import USER_HEADER, USER_NAME, Access

READ_ONLY = "read-only: this session is shared with you; only its owner can change it"
NO_USERS = "sharing needs user auth, which is off"

# The gateway sends only names of this form; anything else is refused before it reaches the store.
User = Annotated[str | None, Header(alias=USER_HEADER, pattern=USER_NAME.pattern)]


async def _store(request: Request) -> Store:
    return cast(Store, request.app.state.store)


StoreDep = Annotated[Store, Depends(_store)]


async def readable(store: Store, session_id: str, user: str | None) -> SessionState:
    """The session if the user owns it or has been shared it; SessionNotFound otherwise."""
    if user is None:
        return await store.get_session(session_id)
    state, access = await store.access(session_id, user)
    if access == "none":
        raise SessionNotFound(session_id)
    return state


async def writable(store: Store, session_id: str, user: str | None) -> SessionState:
    """The session if the user owns it; 403 for a reader, SessionNotFound for anyone else."""
    if user is None:
        return await store.get_session(session_id)
    state, access = await store.access(session_id, user)
    if access == "none":
        raise SessionNotFound(session_id)
    if access == "reader":
        raise HTTPException(403, READ_ONLY)
    return state


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(pattern=USER_NAME.pattern)


class Shares(BaseModel):
    session_id: str
    shared_with: list[str]


class SessionAccess(BaseModel):
    """For the gateway alone (never proxied): how to treat a user's socket to a session."""

    session_id: str
    owner: str | None
    access: Access


router = APIRouter()


@router.get(ACCESS.template)
async def session_access(session_id: str, store: StoreDep, user: User = None) -> SessionAccess:
    if user is None:
        state = await store.get_session(session_id)
        return SessionAccess(session_id=session_id, owner=state.owner, access="owner")
    state, access = await store.access(session_id, user)
    return SessionAccess(session_id=session_id, owner=state.owner, access=access)


def _owner_only(user: str | None) -> str:
    if user is None:
        raise HTTPException(400, NO_USERS)
    return user


@router.post(SHARE.template, status_code=201)
async def share(session_id: str, body: ShareRequest, store: StoreDep, user: User = None) -> Shares:
    owner = _owner_only(user)
    await writable(store, session_id, owner)
    if body.user == owner:
        raise HTTPException(422, f"{owner} owns this session; share it with another user")
    shared_with = await store.share(session_id, body.user)
    return Shares(session_id=session_id, shared_with=shared_with)


@router.get(LIST_SHARES.template)
async def shares(session_id: str, store: StoreDep, user: User = None) -> Shares:
    await writable(store, session_id, _owner_only(user))
    return Shares(session_id=session_id, shared_with=await store.shares(session_id))


@router.delete(UNSHARE.template, status_code=204)
async def unshare(session_id: str, reader: str, store: StoreDep, user: User = None) -> Response:
    await writable(store, session_id, _owner_only(user))
    if not await store.unshare(session_id, reader):
        raise HTTPException(404, f"session {session_id} is not shared with {reader}")
    return Response(status_code=204)
