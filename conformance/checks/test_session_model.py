"""A model of the sessions: hypothesis's rule-based state machine creates sessions, lists them,
chats (over the WebSocket or the runtime stream), switches the socket from one session to another,
reads histories and, where the target allows, restarts the runtime, comparing the target after every
step with what an in-memory model says: the ids created, each session's messages in order and
count, the list.

A difference is shrunk to the fewest steps that still show it. The failure message lists them
(`after the steps: 1. create s1; 2. switch to s1; 3. send "é" on s1; 4. history of s1`), the
transcript holds that minimal run's wire exchange, and the test output also has hypothesis's own
`state.…()` listing.

Each failure names the one requirement it breaks; the plugin judges only that one failed.
"""

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, cast

import httpx
import pytest
from hypothesis import seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    precondition,
    rule,
)
from websockets.exceptions import ConnectionClosed

from conformance.failures import Expect
from conformance.plugin import SocketOpener, deadline
from conformance.probes import Socket, TurnDidNotEnd
from conformance.run_state import state
from conformance.target_runner import TargetRunner
from conformance.targets import Capability
from conformance.transcript import Transcript
from contract import sse
from contract.frames import AssistantMessageFrame, FrameError
from contract.routes import CREATE_SESSION, HISTORY, LIST_SESSIONS, MESSAGE_STREAM

from .generation import (
    Budget,
    is_directive,
    long_text,
    on_loop,
    run_in_worker,
    run_seed,
    shown,
)
from .support import compact, message_data, user_message

pytestmark = pytest.mark.asyncio

T = TypeVar("T")
# Deep runs are bounded by the target's list, which every check's sessions make longer.
MODEL = Budget(examples=15, deep_examples=60, steps=12, deep_steps=25)
WITH_RESTARTS = Budget(examples=5, deep_examples=20, steps=10, deep_steps=20)
# What every variant of the model checks; each variant adds the path its turns take.
MODEL_IDS = ("R-CREATE-1", "R-CREATE-3", "R-LIST-1", "R-HIST-1", "R-HIST-3")
CONTENTS = st.one_of(st.text(max_size=30), long_text(4096, min_bytes=1000)).filter(
    lambda content: not is_directive(content)
)

Via = Literal["socket", "stream"]


@dataclass
class Context:
    """What one run of the model works with; made by the check, on the check's loop."""

    loop: asyncio.AbstractEventLoop
    api: httpx.AsyncClient  # create, list, history: the runtime, else the gateway
    gateway: httpx.AsyncClient  # the IDE's view: the history loaded before a switch
    runtime: httpx.AsyncClient | None  # the agent stream, for turns via "stream"
    open_ws: SocketOpener
    target: TargetRunner
    transcript: Transcript
    via: Via
    scripted: bool
    restarts: int  # runtime restarts one example may make
    timeout: float


@dataclass(frozen=True)
class Turn:
    content: str
    via: Via
    # The agent's text as streamed; None when the turn ended in an error.
    reply: str | None


def _object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _answer(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:300]}"


def _text(text: str | None) -> str:
    """Reply text as compared: whitespace aside, since the contract does not say how chunks join
    ("0", "0" may be stored as "00" or "0 0"; docs/decisions.md)."""
    return "".join((text or "").split())


class SessionModel(RuleBasedStateMachine):
    sessions: Bundle[str] = Bundle("sessions")

    def __init__(self, context: Context) -> None:
        super().__init__()
        self.context = context
        self.steps: list[str] = []
        self.names: dict[str, str] = {}  # session id -> s1, s2, …
        self.turns: dict[str, list[Turn]] = {}
        # Sessions a turn went wrong on (no end, socket lost): their contents are not compared.
        self.unsure: set[str] = set()
        # Message counts known for certain: from the script agent, or the last history read.
        self.counts: dict[str, int | None] = {}
        self.socket: Socket | None = None
        self.socket_session: str | None = None
        self.sockets = AsyncExitStack()
        self.restarts_left = context.restarts
        # The transcript of a failure is the minimal run's: hypothesis replays it last.
        context.transcript.entries.clear()
        context.transcript.note(f"a new run of the session model (seed {run_seed()})")

    # Plumbing

    def run(self, coroutine: Any) -> Any:
        return on_loop(self.context.loop, coroutine, self.context.timeout)

    def step(self, text: str) -> None:
        self.steps.append(text)
        self.context.transcript.note(f"step {len(self.steps)}: {text}")

    def sequence(self) -> str:
        return "; ".join(f"{i}. {text}" for i, text in enumerate(self.steps, start=1))

    def check(self, requirement: str, condition: bool, expected: str, received: object) -> None:
        Expect(requirement).that(
            condition, f"{expected}, after the steps: {self.sequence()}", received
        )

    def name(self, session_id: str) -> str:
        return self.names[session_id]

    # Rules

    @initialize(target=sessions)
    def first_session(self) -> str:
        # Every run starts with a session (and, chatting over sockets, a socket on it): runs that
        # only list an empty model prove little.
        session = self._create()
        if self.context.via == "socket":
            self.switch(session)
        return session

    @rule(target=sessions)
    def create(self) -> str:
        return self._create()

    def _create(self) -> str:
        name = f"s{len(self.names) + 1}"
        self.step(f"create {name}")
        response = self.run(self.context.api.post(CREATE_SESSION.path()))
        self.check(
            "R-CREATE-1",
            response.status_code in (200, 201),
            f"{CREATE_SESSION} to answer 200 or 201",
            _answer(response),
        )
        body = _object(response) or {}
        session_id = body.get("session_id")
        self.check(
            "R-CREATE-1",
            isinstance(session_id, str) and body.get("message_count") == 0,
            f"a new session {name} with a string session_id and message_count 0",
            _answer(response),
        )
        assert isinstance(session_id, str)
        self.check(
            "R-CREATE-3",
            session_id not in self.names,
            f"a new id for {name}",
            f"{session_id}, the id of {self.names.get(session_id)}",
        )
        self.names[session_id] = name
        self.turns[session_id] = []
        self.counts[session_id] = 0
        return session_id

    @precondition(lambda self: self.context.via == "socket")
    @rule(session=sessions)
    def switch_to(self, session: str) -> None:
        self.switch(session)

    def switch(self, session: str) -> None:
        self.step(f"switch to {self.name(session)}")
        self.run(self._switch(session))

    async def _switch(self, session: str) -> None:
        name = self.name(session)
        # As the IDE does: the old socket closed first, the history loaded, the new socket opened.
        await self._close_socket()
        response = await self.context.gateway.get(HISTORY.path(session_id=session))
        self.check(
            "R-HIST-1",
            response.status_code == 200,
            f"200 for the history of {name} through the gateway",
            _answer(response),
        )
        # A socket that does not open fails the prerequisite W-CONN-1, said by the opener.
        self.socket = await self.sockets.enter_async_context(self.context.open_ws(session))
        self.socket_session = session

    async def _close_socket(self) -> None:
        await self.sockets.aclose()
        self.sockets = AsyncExitStack()
        self.socket = None
        self.socket_session = None

    @precondition(lambda self: self.socket is not None)
    @rule(content=CONTENTS)
    def send(self, content: str) -> None:
        session = self.socket_session
        assert session is not None
        self.step(f"send {shown(content, 30)} on {self.name(session)}")
        self.run(self._socket_turn(session, content))

    async def _socket_turn(self, session: str, content: str) -> None:
        socket = self.socket
        assert socket is not None
        # Once turns are known not to end, every replay of hypothesis's would wait one out.
        state().require("W-TURN-1")
        try:
            await socket.send_json(user_message(content))
            frames = await socket.turn()
        except TurnDidNotEnd as exc:
            # Without turns that end the model cannot chat: the prerequisite W-TURN-1 failed.
            raise state().prerequisite_failed(
                "W-TURN-1", "a turn ending within the turn timeout", str(exc)
            ) from None
        except (FrameError, ConnectionClosed) as exc:
            # W-TURN-1 judges turns; the model only stops trusting what this session holds.
            self.context.transcript.note(f"the turn did not end: {exc}")
            self.unsure.add(session)
            self.counts[session] = None
            await self._close_socket()
            return
        ended_well = frames[-1].type != "error"
        reply = "".join(f.text for f in frames if isinstance(f, AssistantMessageFrame))
        self._record(session, Turn(content, "socket", reply if ended_well else None))

    @precondition(lambda self: self.context.via == "stream")
    @rule(session=sessions, content=CONTENTS)
    def send_on_stream(self, session: str, content: str) -> None:
        self.step(f"stream {shown(content, 30)} to {self.name(session)}")
        self.run(self._stream_turn(session, content))

    async def _stream_turn(self, session: str, content: str) -> None:
        runtime = self.context.runtime
        assert runtime is not None
        response = await runtime.post(
            MESSAGE_STREAM.path(),
            json={"session_id": session, "message": user_message(content)},
        )
        events = sse.decode_events(response.text) if response.status_code == 200 else []
        if not events or events[-1].event not in ("done", "error"):
            # R-STREAM-1 judges streams; the model only stops trusting this session.
            self.unsure.add(session)
            self.counts[session] = None
            return
        reply = ""
        for data in message_data(events):
            if data.get("type") == "assistant_message":
                text = data.get("content", data.get("token"))
                reply += text if isinstance(text, str) else ""
        done = events[-1].event == "done"
        self._record(session, Turn(content, "stream", reply if done else None))

    def _record(self, session: str, turn: Turn) -> None:
        self.turns[session].append(turn)
        plain_turn_messages = 2  # the user message and the script agent's reply
        known = self.context.scripted and turn.reply is not None and session not in self.unsure
        count = self.counts.get(session)
        self.counts[session] = count + plain_turn_messages if known and count is not None else None

    @rule(session=sessions)
    def history(self, session: str) -> None:
        name = self.name(session)
        self.step(f"history of {name}")
        response = self.run(self.context.api.get(HISTORY.path(session_id=session)))
        self.check(
            "R-HIST-1",
            response.status_code == 200,
            f"200 for the history of {name}",
            _answer(response),
        )
        body = _object(response) or {}
        messages = body.get("messages")
        self.check(
            "R-HIST-1",
            isinstance(messages, list) and all(isinstance(m, dict) for m in messages),
            f"a messages list in the history of {name}",
            _answer(response),
        )
        assert isinstance(messages, list)
        self.check(
            "R-HIST-1",
            body.get("message_count") == len(messages) and body.get("session_id") == session,
            f"session_id {session} and message_count {len(messages)} (the messages listed) "
            f"in the history of {name}",
            {key: body.get(key) for key in ("session_id", "message_count")},
        )
        if session in self.unsure:
            self.counts[session] = len(messages)
            return
        self._compare(session, messages)
        self.counts[session] = len(messages)

    def _compare(self, session: str, messages: list[dict[str, Any]]) -> None:
        name = self.name(session)
        turns = self.turns[session]
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        sent = [turn.content for turn in turns]
        stored = [messages[i].get("content") for i in users]
        self.check(
            "R-HIST-3",
            stored == sent,
            f"the user messages of {name} as sent, in order: {shown(sent, 200)}",
            shown(stored, 300),
        )
        replies = [m for m in messages if m.get("role") in ("assistant", "tool")]
        answered = [turn for turn in turns if turn.reply is not None]
        if len(replies) < len(answered):
            # Fewer replies than turns that ended well: one is missing, whatever the order.
            # One model run chats one way: its turns all went over sockets, or all to the stream.
            self.check(
                "W-TURN-2" if answered[0].via == "socket" else "R-STREAM-2",
                False,
                f"a reply in the history of {name} for each of its {len(answered)} turns",
                compact(messages),
            )
        ends = [*users[1:], len(messages)][: len(users)]
        for turn, start, end in zip(turns, users, ends, strict=True):
            if turn.reply is None:
                continue
            answers = [
                m for m in messages[start + 1 : end] if m.get("role") in ("assistant", "tool")
            ]
            self.check(
                "R-HIST-3",
                bool(answers),
                f"the reply to {shown(turn.content, 30)} right after it in the history of {name}",
                compact(messages),
            )
            said = " ".join(
                str(m.get("content")) for m in answers if isinstance(m.get("content"), str)
            )
            self.check(
                "W-TURN-2" if turn.via == "socket" else "R-STREAM-2",
                _text(said) == _text(turn.reply),
                f"the reply stored as streamed, {shown(turn.reply, 60)} (whitespace aside), in the "
                f"history of {name}",
                shown(said, 200),
            )

    @rule()
    def list_sessions(self) -> None:
        self.step("list")
        response = self.run(self.context.api.get(LIST_SESSIONS.path()))
        self.check(
            "R-LIST-1", response.status_code == 200, f"200 for {LIST_SESSIONS}", _answer(response)
        )
        body = _object(response) or {}
        listed = body.get("sessions")
        self.check(
            "R-LIST-1",
            isinstance(listed, list) and all(isinstance(info, dict) for info in listed),
            "a sessions list",
            _answer(response),
        )
        assert isinstance(listed, list)
        self.check(
            "R-LIST-1",
            body.get("total") == len(listed),
            f"total == {len(listed)} (the sessions listed)",
            f"total {body.get('total')}",
        )
        times = Counter(info.get("session_id") for info in listed)
        for session, name in self.names.items():
            self.check(
                "R-LIST-1",
                times[session] == 1,
                f"{name} ({session}) listed once",
                f"listed {times[session]} times",
            )
        for info in listed:
            session = info.get("session_id")
            expected = self.counts.get(session) if isinstance(session, str) else None
            if expected is None:
                continue
            self.check(
                "R-LIST-1",
                info.get("message_count") == expected,
                f"message_count {expected} for {self.name(session)}, as its history holds",
                info,
            )

    @precondition(lambda self: self.restarts_left > 0)
    @rule()
    def restart(self) -> None:
        self.step("restart the runtime")
        self.restarts_left -= 1
        self.run(self._restart())

    async def _restart(self) -> None:
        await self.context.target.restart_service("runtime")
        response = await self.context.api.get(LIST_SESSIONS.path())
        body = _object(response) or {}
        listed = body.get("sessions") if isinstance(body.get("sessions"), list) else []
        ids = {info.get("session_id") for info in listed or [] if isinstance(info, dict)}
        for session, name in self.names.items():
            self.check("R-CREATE-4", session in ids, f"{name} still listed", _answer(response))
            history = await self.context.api.get(HISTORY.path(session_id=session))
            self.check(
                "R-CREATE-4",
                history.status_code == 200,
                f"200 for the history of {name}",
                _answer(history),
            )

    def teardown(self) -> None:
        self.run(self._close_socket())


async def check_model(context: Context, budget: Budget, deep: bool) -> None:
    # Hypothesis documents the factory as "anything which returns an instance"; its stubs say type.
    factory = cast("type[RuleBasedStateMachine]", lambda: SessionModel(context))
    test = get_state_machine_test(factory, settings=budget.settings(deep))
    await run_in_worker(seed(run_seed())(test))


class MakeContext(Protocol):
    def __call__(self, runtime: httpx.AsyncClient | None = None, restarts: int = 0) -> Context: ...


@pytest.fixture
def contexts(
    gateway: httpx.AsyncClient,
    open_ws: SocketOpener,
    sessionlab_target: TargetRunner,
    profiles: frozenset[str],
    transcript: Transcript,
) -> MakeContext:
    """Contexts of this check's run: chatting over sockets through the gateway, or, given the
    runtime, over its agent stream."""

    def made(runtime: httpx.AsyncClient | None = None, restarts: int = 0) -> Context:
        return Context(
            loop=asyncio.get_running_loop(),
            # Over sockets everything goes through the gateway, as the IDE does: with users, a
            # session belongs to the user whose token created it, and only the gateway knows that
            # user.
            api=gateway if runtime is None else runtime,
            gateway=gateway,
            runtime=runtime,
            open_ws=open_ws,
            target=sessionlab_target,
            transcript=transcript,
            via="socket" if runtime is None else "stream",
            scripted="scripted" in profiles,
            restarts=restarts,
            # A step may restart the runtime or wait out a turn.
            timeout=deadline(60 + sessionlab_target.turn_timeout),
        )

    return made


@pytest.mark.req(*MODEL_IDS, "W-CONN-1", "W-TURN-2")
async def test_sessions_chatted_over_sockets_behave_like_the_model(
    contexts: MakeContext, deep: bool
) -> None:
    """The session model, chatting over sockets through the gateway; after each step the target is
    compared with the model:

    - R-CREATE-1: "POST /sessions ... -> 200 or 201 with {"session_id": str, "message_count": 0,
      ...}";
    - R-CREATE-3: "Ids are unique": no id twice in a run;
    - R-LIST-1: "every created session appears; total equals the number of sessions listed": each
      session once, its message_count what its history last held (under scripted, two messages a
      plain turn: the user's and the script agent's reply);
    - R-HIST-1: "for a known id -> 200 ... with message_count == len(messages)", its session_id the
      id asked about;
    - R-HIST-3: "Messages come back in the order they were appended": the user messages as sent,
      each reply after its own user message;
    - W-CONN-1: "The gateway accepts a WebSocket on /ws/{id} for a session created by POST
      /sessions": each switch opens one;
    - W-TURN-2: "After a turn, the session's history holds the user message and the agent's reply
      (R-STREAM-2)": the reply as streamed, whitespace aside.
    """
    await check_model(contexts(), MODEL, deep)


@pytest.mark.req(*MODEL_IDS, "R-STREAM-2")
async def test_sessions_chatted_over_the_runtime_stream_behave_like_the_model(
    runtime: httpx.AsyncClient, contexts: MakeContext, deep: bool
) -> None:
    """The session model, chatting over the runtime's agent stream; after each step the target is
    compared with the model:

    - R-CREATE-1: "POST /sessions ... -> 200 or 201 with {"session_id": str, "message_count": 0,
      ...}";
    - R-CREATE-3: "Ids are unique": no id twice in a run;
    - R-LIST-1: "every created session appears; total equals the number of sessions listed": each
      session once, its message_count what its history last held (under scripted, two messages a
      plain turn: the user's and the script agent's reply);
    - R-HIST-1: "for a known id -> 200 ... with message_count == len(messages)", its session_id the
      id asked about;
    - R-HIST-3: "Messages come back in the order they were appended": the user messages as sent,
      each reply after its own user message;
    - R-STREAM-2: "A user_message is appended to history as {"role": "user", "content": ...}
      before the stream ends; the agent's text is appended as role assistant": the reply as
      streamed, whitespace aside.
    """
    await check_model(contexts(runtime), MODEL, deep)


@pytest.mark.req("R-CREATE-4", *MODEL_IDS, "W-CONN-1", "W-TURN-2")
async def test_the_model_holds_across_runtime_restarts(
    sessionlab_target: TargetRunner, contexts: MakeContext, deep: bool
) -> None:
    """The session model over sockets, with runtime restarts among its steps; after each step the
    target is compared with the model:

    - R-CREATE-4: "after a runtime restart it is still listed and its history is 200", for every
      session of the run;
    - R-CREATE-1: "POST /sessions ... -> 200 or 201 with {"session_id": str, "message_count": 0,
      ...}";
    - R-CREATE-3: "Ids are unique": no id twice in a run;
    - R-LIST-1: "every created session appears; total equals the number of sessions listed": each
      session once, its message_count what its history last held (under scripted, two messages a
      plain turn: the user's and the script agent's reply);
    - R-HIST-1: "for a known id -> 200 ... with message_count == len(messages)", its session_id the
      id asked about;
    - R-HIST-3: "Messages come back in the order they were appended": the user messages as sent,
      each reply after its own user message;
    - W-CONN-1: "The gateway accepts a WebSocket on /ws/{id} for a session created by POST
      /sessions": each switch opens one;
    - W-TURN-2: "After a turn, the session's history holds the user message and the agent's reply
      (R-STREAM-2)": the reply as streamed, whitespace aside.
    """
    if not sessionlab_target.supports("runtime", Capability.STOP):
        pytest.skip("the target offers no control of its runtime (stop/start)")
    await check_model(contexts(restarts=2 if deep else 1), WITH_RESTARTS, deep)
