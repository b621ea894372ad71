"""X-DEL-1, X-REN-1, X-EXP-1, X-SRCH-1: delete, rename, export and search, through the gateway.

The gateway is what an IDE talks to, so that is where these hold. Messages go in over the WebSocket,
not the runtime's stream, so the checks mean the same for a real agent as for the script agent:
they look only for text the check itself sent (made unique by `run_id`), never for what an agent
answers.
"""

from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from conformance.failures import Expect
from conformance.plugin import SocketOpener
from contract.bodies import SearchResults, SessionExport, SessionInfo
from contract.routes import (
    DELETE_SESSION,
    EXPORT,
    HISTORY,
    LIST_SESSIONS,
    RENAME_SESSION,
    SEARCH,
)

from .support import (
    compact,
    create_session,
    expect_body,
    history_messages,
    json_object,
    turn,
    user_message,
)

pytestmark = pytest.mark.asyncio

UNKNOWN_SESSION = 4404
JSON = "-H 'Content-Type: application/json'"
# The fields that make a message what it is; a target may add its own beside them.
MESSAGE_FIELDS = ("role", "content", "name", "tool_call_id", "tool_calls")


# Helpers


def _title_argument(title: str) -> str:
    """A shell argument for a JSON body with this title; a long run of one letter made by the
    shell, not spelled out in a report line."""
    if len(title) > 40 and len(set(title)) == 1:
        return f'"{{\\"title\\": \\"$(head -c {len(title)} /dev/zero | tr \'\\0\' {title[0]})\\"}}"'
    return f"'{compact({'title': title})}'"


def _curl(client: httpx.AsyncClient, method: str, path: str) -> str:
    return f"curl -i -X {method} '{client.base_url}{path}'"


async def _session_with(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, expect: Expect, *texts: str
) -> str:
    session_id = await create_session(gateway)
    await _write(open_ws, session_id, expect, *texts)
    return session_id


async def _write(open_ws: SocketOpener, session_id: str, expect: Expect, *texts: str) -> None:
    async with open_ws(session_id) as socket:
        for text in texts:
            # A turn ending in an error frame may not have stored its message, and every check
            # here needs it stored.
            answered = f"the message {text!r} answered without an error"
            await turn(socket, user_message(text), expect, answered)


async def _listed(gateway: httpx.AsyncClient, expect: Expect) -> dict[str, dict[str, Any]]:
    """`GET /sessions` as session id -> list entry."""
    response = await gateway.get(LIST_SESSIONS.path())
    expect.that(
        response.status_code == 200,
        f"{LIST_SESSIONS} to answer 200",
        f"{response.status_code} {response.text}",
    )
    sessions = json_object(response, expect, str(LIST_SESSIONS)).get("sessions")
    expect.that(isinstance(sessions, list), "a sessions list", response.text)
    assert isinstance(sessions, list)
    return {
        entry["session_id"]: entry
        for entry in sessions
        if isinstance(entry, dict) and isinstance(entry.get("session_id"), str)
    }


def _essentials(messages: list[Any]) -> list[dict[str, Any]]:
    return [
        {name: message.get(name) for name in MESSAGE_FIELDS}
        if isinstance(message, dict)
        else {"not a message": message}
        for message in messages
    ]


def _history_in_order(history: list[dict[str, Any]], texts: list[str]) -> None:
    """An export is compared with the history; a history out of order is R-HIST-3's failure,
    and the export cannot be judged against it."""
    Expect("R-HIST-3").that(
        _user_texts(history) == texts,
        f"the history's user messages in the order sent: {compact(texts)}",
        compact(_user_texts(history)),
    )


def _user_texts(messages: list[dict[str, Any]]) -> list[Any]:
    return [message.get("content") for message in messages if message.get("role") == "user"]


# X-DEL-1


@pytest.mark.req("X-DEL-1")
async def test_a_deleted_session_answers_204_and_is_gone_from_history_and_list(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """X-DEL-1: "DELETE /sessions/{id} -> 204; afterwards history is 404, the session is not
    listed". A neighbouring session stays listed with its history, and a second delete of the same
    id answers 404, as for an id never made (docs/decisions.md, Extensions)."""
    expect = Expect("X-DEL-1")
    doomed = await _session_with(gateway, open_ws, expect, f"soon deleted {run_id}")
    # A neighbour, so that a delete which takes more than its own session shows.
    kept = await _session_with(gateway, open_ws, expect, f"stays put {run_id}")
    before = await _listed(gateway, expect)
    expect.that(doomed in before, f"{doomed} listed before the delete", sorted(before))
    path = DELETE_SESSION.path(session_id=doomed)
    response = await gateway.delete(path)
    expect.that(
        response.status_code == 204,
        f"DELETE {path} to answer 204",
        f"{response.status_code} {response.text}",
        reproduce=_curl(gateway, "DELETE", path),
    )
    history = await gateway.get(HISTORY.path(session_id=doomed))
    expect.that(
        history.status_code == 404,
        "its history to answer 404 after the delete",
        f"{history.status_code} {history.text}",
    )
    after = await _listed(gateway, expect)
    listed_url = f"{gateway.base_url}{LIST_SESSIONS.path()}"
    expect.that(
        doomed not in after,
        "the deleted session no longer listed by GET /sessions",
        compact(after.get(doomed)),
        reproduce=f"{_curl(gateway, 'DELETE', path)}; curl '{listed_url}'",
    )
    expect.that(kept in after, f"the other session {kept} still listed", sorted(after))
    survivor = await gateway.get(HISTORY.path(session_id=kept))
    expect.that(
        survivor.status_code == 200 and f"stays put {run_id}" in survivor.text,
        "the other session's history untouched",
        f"{survivor.status_code} {survivor.text}",
    )
    again = await gateway.delete(path)
    expect.that(
        again.status_code == 404,
        "a second DELETE of the same session to answer 404: it is unknown now",
        f"{again.status_code} {again.text}",
    )


@pytest.mark.req("X-DEL-1")
async def test_deleting_an_unknown_session_answers_404(
    gateway: httpx.AsyncClient, run_id: str
) -> None:
    """X-DEL-1: "... unknown id -> 404." An id of the server's format that no create made."""
    expect = Expect("X-DEL-1")
    unknown = f"session_{run_id}{'0' * 8}"
    path = DELETE_SESSION.path(session_id=unknown)
    response = await gateway.delete(path)
    expect.that(
        response.status_code == 404,
        f"DELETE {path} of a session never made to answer 404",
        f"{response.status_code} {response.text}",
        reproduce=_curl(gateway, "DELETE", path),
    )


@pytest.mark.req("X-DEL-1")
async def test_a_socket_to_a_deleted_session_is_refused_with_4404_in_strict(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, profiles: frozenset[str], run_id: str
) -> None:
    """X-DEL-1: "... strict WebSockets to it are refused": with close code 4404, as for any unknown
    id (W-CONN-2). Skipped unless profile strict is selected."""
    if "strict" not in profiles:
        pytest.skip("profile strict is not selected: a socket to a deleted session may open")
    expect = Expect("X-DEL-1")
    session_id = await _session_with(gateway, open_ws, expect, f"deleted then dialled {run_id}")
    response = await gateway.delete(DELETE_SESSION.path(session_id=session_id))
    expect.that(
        response.status_code == 204,
        "DELETE to answer 204",
        f"{response.status_code} {response.text}",
    )
    # A message goes out at once: a refusing gateway has closed by then, and one that serves the
    # socket shows it by answering (and a tolerant runtime would bring the session back).
    try:
        async with open_ws(session_id) as socket:
            await socket.send_json(user_message(f"anyone there {run_id}"))
            received = f"accepted and answered {await socket.recv_text()}"
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd is not None else 1006
        received = f"close {code}"
        if code == UNKNOWN_SESSION:
            return
    except InvalidStatus as exc:
        received = f"HTTP {exc.response.status_code} at the handshake, no close code"
    except (InvalidHandshake, OSError) as exc:
        received = f"no socket: {type(exc).__name__} {exc}"
    except TimeoutError:
        received = "accepted, then silence"
    expect.fail(
        "a socket to the deleted session refused with close code 4404 (profile strict)", received
    )


# X-REN-1


@pytest.mark.req("X-REN-1")
async def test_a_rename_answers_the_session_with_its_title_and_the_list_shows_it(
    gateway: httpx.AsyncClient, run_id: str
) -> None:
    """X-REN-1: "PATCH /sessions/{id} {"title": str} -> 200 with the session; GET /sessions shows
    title." Twice, the second title not ASCII; the session answered is read as GET /sessions lists
    one (a SessionInfo), with the new title (docs/decisions.md)."""
    expect = Expect("X-REN-1")
    session_id = await create_session(gateway)
    path = RENAME_SESSION.path(session_id=session_id)
    # Twice, so that a title kept only the first time, or never replaced, shows; the second one
    # is not ASCII, as titles typed by people often are not.
    for title in (f"First title {run_id}", f"Zweiter Titel: äöü ✓ {run_id}"):
        response = await gateway.patch(path, json={"title": title})
        expect.that(
            response.status_code == 200,
            f"PATCH {path} with a title to answer 200",
            f"{response.status_code} {response.text}",
            reproduce=_curl(gateway, "PATCH", path) + f" {JSON} -d '{compact({'title': title})}'",
        )
        info = expect_body(SessionInfo, response, expect, "the rename's body")
        expect.that(
            info.session_id == session_id and info.title == title,
            f"the session {session_id} with title {title!r}",
            response.text,
        )
        entry = (await _listed(gateway, expect)).get(session_id)
        expect.that(
            entry is not None and entry.get("title") == title,
            f"GET /sessions to show {session_id} with title {title!r}",
            compact(entry),
        )


@pytest.mark.req("X-REN-1")
@pytest.mark.parametrize(
    ("what", "title"),
    [("an empty title", ""), ("a title of 10,000 characters", "t" * 10_000)],
    ids=["empty", "10000-characters"],
)
async def test_an_empty_or_over_long_title_is_refused_with_422_and_changes_nothing(
    gateway: httpx.AsyncClient, what: str, title: str
) -> None:
    """X-REN-1: "... empty or over-long titles -> 422." Over-long: 10,000 characters; after the
    refusal the list shows the title the session had before (docs/decisions.md, Extensions)."""
    expect = Expect("X-REN-1")
    session_id = await create_session(gateway)
    before = (await _listed(gateway, expect)).get(session_id)
    path = RENAME_SESSION.path(session_id=session_id)
    response = await gateway.patch(path, json={"title": title})
    expect.that(
        response.status_code == 422,
        f"422 for {what}",
        f"{response.status_code} {response.text}",
        reproduce=_curl(gateway, "PATCH", path) + f' -d \'{{"title": "{title[:20]}"}}\'',
    )
    after = (await _listed(gateway, expect)).get(session_id)
    expect.that(
        (after or {}).get("title") == (before or {}).get("title"),
        f"the title unchanged after the refused rename ({compact((before or {}).get('title'))})",
        compact(after),
    )


# X-EXP-1


async def _exported(
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    expect: Expect,
    texts: list[str],
    form: str,
) -> tuple[str, list[dict[str, Any]], httpx.Response]:
    """A session holding `texts`, its history, and its export in `form`, answered with a 200."""
    session_id = await _session_with(gateway, open_ws, expect, *texts)
    history = await history_messages(gateway, session_id)
    _history_in_order(history, texts)
    path = EXPORT.path(session_id=session_id) + f"?format={form}"
    response = await gateway.get(path)
    expect.that(
        response.status_code == 200,
        f"GET {path} to answer 200",
        f"{response.status_code} {response.text}",
        reproduce=_curl(gateway, "GET", path),
    )
    return session_id, history, response


@pytest.mark.req("X-EXP-1")
async def test_a_json_export_is_a_download_of_every_message_in_order(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """X-EXP-1: "GET /sessions/{id}/export?format=json -> the full history as a downloadable JSON
    document". Downloadable: Content-Disposition: attachment; the full history: the history's
    messages, field by field and in order (docs/decisions.md, Extensions). The document is read as
    sessionlab's SessionExport (session_id, title, exported_at, message_count, messages,
    agent_history), its message_count the number of its messages."""
    expect = Expect("X-EXP-1")
    texts = [f"export me first {run_id}", f"export me second {run_id}"]
    session_id, history, response = await _exported(gateway, open_ws, expect, texts, "json")
    disposition = response.headers.get("content-disposition", "")
    expect.that(
        disposition.strip().lower().startswith("attachment"),
        "a download: Content-Disposition: attachment",
        f"Content-Disposition {disposition!r}" if disposition else "no Content-Disposition",
    )
    document = expect_body(SessionExport, response, expect, "the export")
    expect.that(document.session_id == session_id, f"session_id {session_id}", document.session_id)
    exported = [message.model_dump(exclude_none=True) for message in document.messages]
    expect.that(
        document.message_count == len(exported),
        f"message_count {len(exported)}, the number of messages exported",
        document.message_count,
    )
    expect.that(
        _user_texts(exported) == texts,
        f"the user messages sent, in order: {compact(texts)}",
        compact(_user_texts(exported)),
    )
    expect.that(
        _essentials(exported) == _essentials(history),
        f"every message of the history, in order ({len(history)})",
        compact(exported),
    )


@pytest.mark.req("X-EXP-1")
async def test_a_markdown_export_is_text_markdown_holding_every_message_in_order(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """X-EXP-1: "format=markdown -> a readable transcript (text/markdown)." Each line of each
    message's text appears in history order; no layout is asked (docs/decisions.md, Extensions)."""
    expect = Expect("X-EXP-1")
    texts = [f"markdown first {run_id}", f"markdown second {run_id}"]
    session_id, history, response = await _exported(gateway, open_ws, expect, texts, "markdown")
    path = EXPORT.path(session_id=session_id) + "?format=markdown"
    kind = response.headers.get("content-type", "")
    expect.that(
        kind.split(";")[0].strip().lower() == "text/markdown",
        "Content-Type text/markdown",
        kind or "no Content-Type",
        reproduce=_curl(gateway, "GET", path),
    )
    # Each message's text in history order, line by line: a transcript may quote or indent a
    # line, but not drop one. Searching on from the last match makes a reply that repeats the
    # user's words (as the script agent's does) count as a message of its own.
    transcript = response.text
    at = 0
    for number, message in enumerate(history, start=1):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            continue
        for line in filter(None, (part.strip() for part in content.splitlines())):
            found = transcript.find(line, at)
            expect.that(
                found >= 0,
                f"message {number} of {len(history)} ({message.get('role')}) in the transcript, "
                f"after the ones before it: {line!r}",
                transcript,
            )
            at = found + len(line)


# X-SRCH-1


async def _search(gateway: httpx.AsyncClient, query: str, expect: Expect) -> SearchResults:
    response = await gateway.get(SEARCH.path(), params={"q": query})
    reproduce = f"curl -i '{response.request.url}'"
    expect.that(
        response.status_code == 200,
        f"{SEARCH}?q={query} to answer 200",
        f"{response.status_code} {response.text}",
        reproduce=reproduce,
    )
    found = expect_body(SearchResults, response, expect, "the search's body")
    expect.that(
        found.total == len(found.results),
        f"total {len(found.results)}, the number of results",
        found.total,
    )
    return found


@pytest.mark.req("X-SRCH-1")
async def test_search_finds_a_session_by_a_word_in_another_case_with_a_snippet(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """X-SRCH-1: "GET /sessions/search?q=<text> -> sessions whose messages contain the text
    (case-insensitive) with a snippet each". A word of mixed case, searched with its case swapped;
    its snippet shows the word; a session of the run without it is not listed. The answer is read as
    sessionlab's SearchResults, its total the number of results."""
    expect = Expect("X-SRCH-1")
    # Mixed case, so its swapped-case form matches neither a lower- nor an upper-cased copy.
    word = f"Quokka{run_id}"
    holder = await _session_with(gateway, open_ws, expect, f"Please remember the {word} for later")
    # Same run, no word: a search that answers everything, or every session of the run, lists it.
    other = await _session_with(gateway, open_ws, expect, f"nothing to find here {run_id}")
    query = word.swapcase()
    found = await _search(gateway, query, expect)
    hits = {result.session_id: result for result in found.results}
    expect.that(
        holder in hits,
        f"the session holding {word!r} found by q={query!r} (case-insensitive)",
        compact([result.session_id for result in found.results]),
    )
    snippet = hits[holder].snippet
    expect.that(
        word.lower() in snippet.lower(),
        f"a snippet showing {word!r}",
        snippet,
    )
    expect.that(
        other not in hits,
        f"no result for {other}, whose messages do not hold {word!r}",
        compact(hits[other].model_dump() if other in hits else None),
    )


@pytest.mark.req("X-SRCH-1")
async def test_search_lists_the_session_written_to_last_first(
    gateway: httpx.AsyncClient, open_ws: SocketOpener, run_id: str
) -> None:
    """X-SRCH-1: "... with a snippet each; ranking by recency." The session with the latest message
    first, in two rounds with different winners, so that no fixed order passes both
    (docs/decisions.md, Extensions)."""
    expect = Expect("X-SRCH-1")
    word = f"pangolin{run_id}"
    first, second, third = [
        await _session_with(gateway, open_ws, expect, f"{word} in session {number}")
        for number in (1, 2, 3)
    ]
    # Two rounds with different winners: no fixed order (by creation, by id) fits both, so only
    # an order by last activity passes.
    for written, expected in (
        (second, [second, third, first]),
        (first, [first, second, third]),
    ):
        await _write(open_ws, written, expect, f"back to {written} about the {word}")
        found = await _search(gateway, word, expect)
        order = [r.session_id for r in found.results if r.session_id in (first, second, third)]
        expect.that(
            order == expected,
            f"the session written to last ({written}) first, then by recency: {compact(expected)}",
            compact(order),
        )
