"""Run a scenario against a target: IDE actions through the simulator, faults through the target
and the fault proxy, expectations checked as each step comes."""

import asyncio
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from websockets.exceptions import WebSocketException

from conformance.target_runner import TargetRunner
from conformance.targets import Capability, Service
from conformance.targets.base import SERVICES
from scenarios.model import (
    VARIABLE,
    ChatExpect,
    ChatItemExpect,
    Client,
    CreatedExpect,
    DurabilityArgs,
    EditArgs,
    ErrorExpect,
    HistoryExpect,
    LogExpect,
    MessageExpect,
    NetworkArgs,
    RejectArgs,
    ReplyExpect,
    Scenario,
    SecondsArg,
    ServiceArg,
    SessionArg,
    SessionExpect,
    StateExpect,
    Step,
    StoredExpect,
    SwitchAgentArgs,
    TextArg,
    ToolCallExpect,
    WorkspaceFile,
)
from scenarios.results import ScenarioResult, StepResult
from simulators.durability.run import DurabilitySettings, NotControllable, run_durability
from simulators.durability.schedule import schedule_from
from simulators.faultproxy import FaultProxy, Latency, Timeout
from simulators.ide import IdeError


class StepFailed(AssertionError):
    """An expectation of the plan did not hold; the message says what, in the plan's words."""


@dataclass(frozen=True)
class TurnEnd:
    """How a turn ended for the user: a final reply, or an error (frame or lost socket)."""

    kind: Literal["reply", "error"]
    text: str


@dataclass(frozen=True)
class Frame:
    at: float  # time.monotonic() when it arrived
    text: str


@dataclass(frozen=True)
class ChatEntry:
    """One item of the IDE's chat: a user message, an assistant bubble, a tool result..."""

    kind: str
    text: str


class Ide(Protocol):
    """What a scenario drives: one simulated IDE (see simulators/ide and ide_adapter)."""

    async def open_panel(self) -> None: ...
    async def back_to_list(self) -> None: ...
    async def new_session(self) -> str: ...
    async def switch_to(self, session_id: str) -> None: ...
    async def send(self, text: str) -> None: ...
    async def decide(
        self, decision: str, arguments: dict[str, Any] | None, feedback: str | None
    ) -> None: ...
    async def switch_agent(self, agent: str, content: str) -> None: ...
    async def restart(self) -> None: ...
    async def close(self) -> None: ...
    def put_file(self, path: str, content: str) -> None: ...
    # What a turn brought, taken without waiting: the runner decides how long to wait.
    def take_tool_call(self) -> dict[str, Any] | None: ...
    def take_turn_end(self) -> TurnEnd | None: ...
    @property
    def open_turns(self) -> int:
        """Turns started whose end has not been taken yet."""
        ...

    @property
    def awaiting_approval(self) -> list[str]:
        """Tools whose call waits for the plan's decision (approve, edit, reject)."""
        ...

    def frames_since(self, moment: float) -> list[Frame]: ...
    @property
    def state(self) -> str: ...
    @property
    def current_session_id(self) -> str | None: ...
    @property
    def connected_session_id(self) -> str | None: ...
    @property
    def closed_session_ids(self) -> list[str]: ...
    @property
    def errors(self) -> list[str]: ...
    @property
    def chat_items(self) -> list[ChatEntry]: ...
    @property
    def last_create_body(self) -> dict[str, Any] | None:
        """The JSON body of the last successful `POST /sessions` answer."""
        ...

    @property
    def stored_session_id(self) -> str | None: ...
    @property
    def stored_agent_type(self) -> str | None: ...
    def trace_tail(self, count: int) -> list[str]: ...


IdeFactory = Callable[[str], Awaitable[Ide]]

NEEDS: dict[str, tuple[Service, Capability]] = {
    "runtime-control": ("runtime", Capability.STOP),
    "gateway-control": ("gateway", Capability.STOP),
    "kill": ("runtime", Capability.KILL),
    "pause": ("runtime", Capability.PAUSE),
    "logs": ("runtime", Capability.LOGS),
}


def missing_preconditions(
    scenario: Scenario, target: TargetRunner, client: Client = "designed"
) -> list[str]:
    reasons = []
    if client not in scenario.clients:
        only = " and ".join(scenario.clients)
        reasons.append(f"the plan runs only with the {only} client, not the {client} one")
    reasons += [
        f"the target does not claim profile {profile!r}"
        for profile in scenario.profiles
        if profile not in target.profiles | {"core"}
    ]
    for need in scenario.needs:
        if need in NEEDS:
            service, capability = NEEDS[need]
            if not target.supports(service, capability):
                reasons.append(f"the target cannot {capability.value} its {service} ({need})")
        elif need == "runtime-proxy" and not target.has_runtime_hop:
            reasons.append("the target offers no fault proxy between gateway and runtime")
    return reasons


@dataclass
class _Run:
    scenario: Scenario
    target: TargetRunner
    ide: Ide
    proxy: FaultProxy
    http: httpx.AsyncClient
    log_marks: dict[Service, int]
    client: Client = "designed"
    variables: dict[str, str] = field(default_factory=dict)
    # What the plan did to the target, undone when the scenario ends whatever happened.
    stopped: set[Service] = field(default_factory=set)
    paused: set[Service] = field(default_factory=set)
    hop_touched: bool = False

    def resolve(self, text: str) -> str:
        return VARIABLE.sub(lambda match: self.variables[match.group(1)], text)

    def resolved(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.resolve(value)
        if isinstance(value, dict):
            return {key: self.resolved(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolved(item) for item in value]
        return value

    def remember_session(self, session_id: str) -> None:
        previous = self.variables.get("session")
        if previous is not None and previous != session_id:
            self.variables["previous_session"] = previous
        self.variables["session"] = session_id


def _expect_text(text: str, args: ReplyExpect) -> None:
    if args.equals is None and args.contains is None and args.matches is None and not text:
        raise StepFailed("the final reply came with empty text; expected a reply with text")
    if args.equals is not None and text != args.equals:
        raise StepFailed(f"the reply was {text!r}, expected {args.equals!r}")
    if args.contains is not None and args.contains not in text:
        raise StepFailed(f"the reply {text!r} does not contain {args.contains!r}")
    if args.matches is not None and not re.search(args.matches, text):
        raise StepFailed(f"the reply {text!r} does not match /{args.matches}/")


# How often a wait on the IDE looks again: frames arrive on the IDE's reader task.
POLL_SECONDS = 0.02
TurnWanted = Literal["reply", "tool call", "error"]
AWAITED: dict[TurnWanted, str] = {
    "reply": "a final reply",
    "tool call": "a tool call",
    "error": "an error",
}

TURN_STEPS: dict[str, TurnWanted] = {
    "expect_reply": "reply",
    "expect_tool_call": "tool call",
    "expect_error": "error",
}


def _ended(end: TurnEnd) -> str:
    if end.kind == "reply":
        return f"with the final reply {end.text!r}"
    return f"in an error: {end.text}"


async def _turn_event(run: _Run, wanted: TurnWanted, bound: float) -> dict[str, Any] | TurnEnd:
    """The next tool call (when one is wanted) or turn end; fails at once when what is wanted can
    no longer come, rather than waiting out the step's time."""
    ide = run.ide
    began = time.monotonic()
    while True:
        if wanted == "tool call":
            call = ide.take_tool_call()
            if call is not None:
                return call
        end = ide.take_turn_end()
        if end is not None:
            return end
        expected = f"expected {AWAITED[wanted]} within {bound:g} s"
        waiting = ide.awaiting_approval
        if waiting:
            raise StepFailed(
                f"{expected}; after {time.monotonic() - began:.1f} s the agent is waiting for "
                f"the plan to approve, edit or reject {', '.join(waiting)}, so nothing else can "
                "come first"
            )
        if ide.open_turns == 0:
            raise StepFailed(
                f"{expected}; no turn is open: the plan sent nothing since the last turn ended"
            )
        if ide.connected_session_id is None:
            # An IDE that does not reopen a dropped socket leaves its turn open for ever: nothing
            # can reach it. One that does reopen has ended the turn in an error, read above.
            raise StepFailed(
                f"{expected}; after {time.monotonic() - began:.1f} s no WebSocket is open to "
                f"bring it: the IDE's socket to {ide.current_session_id} is gone and was not "
                "reopened"
            )
        await asyncio.sleep(POLL_SECONDS)


async def _expect_turn(run: _Run, wanted: TurnWanted, bound: float) -> dict[str, Any] | TurnEnd:
    began = time.monotonic()
    event = await _turn_event(run, wanted, bound)
    if isinstance(event, TurnEnd) and not (
        (wanted == "reply" and event.kind == "reply")
        or (wanted == "error" and event.kind == "error")
    ):
        after = time.monotonic() - began
        without = " and no tool call" if wanted == "tool call" else ""
        raise StepFailed(
            f"expected {AWAITED[wanted]} within {bound:g} s; after {after:.1f} s the turn ended "
            f"{_ended(event)}{without}"
        )
    return event


def _timed_out(run: _Run, step: Step, bound: float, began: float) -> str:
    """What a step that ran out of time awaited, and what came instead."""
    if step.action in TURN_STEPS:
        wanted = TURN_STEPS[step.action]
        frames = run.ide.frames_since(began)
        if not frames:
            came = "no frame came from the gateway"
        else:
            last = frames[-1].text
            shown = last if len(last) <= 200 else last[:200] + "…"
            came = f"{len(frames)} frame(s) came, none ending the turn; the last: {shown}"
        return f"waited {bound:g} s for {AWAITED[wanted]}; {came}"
    if isinstance(step.args, LogExpect):
        resolved = LogExpect.model_validate(run.resolved(step.args.model_dump(exclude_none=True)))
        return _log_missing(run, resolved, bound)
    return (
        f"waited {bound:g} s for {step.action} to finish; it had not "
        "(the IDE's trace below shows how far it got)"
    )


def _explain(exc: BaseException) -> str:
    """An exception in words: its kind and message, the request it concerned, never a repr."""
    kind = type(exc).__name__
    if isinstance(exc, IdeError):
        return str(exc)
    if isinstance(exc, httpx.RequestError):
        request = exc.request
        detail = str(exc) or "no answer"
        return f"{request.method} {request.url.path} failed ({kind}: {detail})"
    detail = str(exc)
    return f"{kind}: {detail}" if detail else f"{kind} (no detail given)"


async def _history(run: _Run, session_id: str) -> dict[str, Any]:
    response = await run.http.get(f"/sessions/{session_id}/history")
    if response.status_code != 200:
        raise StepFailed(
            f"history of {session_id} answered {response.status_code}: {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


def _matches(actual: dict[str, Any], expected: MessageExpect) -> bool:
    content = actual.get("content") or ""
    return (
        actual.get("role") == expected.role
        and (expected.content is None or content == expected.content)
        and (expected.contains is None or expected.contains in content)
    )


async def _expect_history(run: _Run, args: HistoryExpect) -> None:
    session_id = args.session or run.ide.current_session_id
    if session_id is None:
        raise StepFailed("no session to read the history of: the IDE has none")
    messages: list[dict[str, Any]] = (await _history(run, session_id))["messages"]
    if args.count is not None and len(messages) != args.count:
        raise StepFailed(
            f"history of {session_id} has {len(messages)} messages, expected {args.count}"
        )
    if args.contains is not None and not any(
        args.contains in (m.get("content") or "") for m in messages
    ):
        raise StepFailed(f"no message of {session_id} contains {args.contains!r}")
    # In order, with anything between: a turn may hold tool calls and results besides the reply.
    position = 0
    for number, expected in enumerate(args.messages or [], start=1):
        found = next(
            (i for i in range(position, len(messages)) if _matches(messages[i], expected)), None
        )
        if found is None:
            after = f" after message {position}" if position else ""
            shown = [{key: m.get(key) for key in ("role", "content")} for m in messages[:8]]
            holds = f"its {len(messages)} messages: {shown}" if messages else "it holds none"
            raise StepFailed(
                f"history of {session_id} has no message {expected.model_dump(exclude_none=True)!r}"
                f"{after} (expected message {number} of {len(args.messages or [])}); {holds}"
            )
        position = found + 1


def _holds(line: str, texts: list[str]) -> bool:
    return all(text in line for text in texts)


def _shown(texts: list[str]) -> str:
    return " + ".join(repr(text) for text in texts)


def _chain(lines: list[str], entries: list[list[str]]) -> tuple[bool, list[int]]:
    """Lines holding the entries in order, each the nearest one holding its texts before the next
    entry's line: whether a whole chain was found, and the chain (else the longest partial one,
    from the end)."""
    best: list[int] = []
    for last, line in enumerate(lines):
        if not _holds(line, entries[-1]):
            continue
        chain = [last]
        for entry in reversed(entries[:-1]):
            found = next((i for i in range(chain[0] - 1, -1, -1) if _holds(lines[i], entry)), None)
            if found is None:
                break
            chain.insert(0, found)
        if len(chain) == len(entries):
            return True, chain
        if len(chain) > len(best):
            best = chain
    return False, best


def _order_missing(run: _Run, args: LogExpect, seconds: float) -> str:
    assert args.in_order is not None
    entries = args.in_order
    lines = run.target.logs(args.service).lines()[run.log_marks[args.service] :]
    wanted = ", then ".join(_shown(entry) for entry in entries)
    _, chain = _chain(lines, entries)
    holding_last = sum(_holds(line, entries[-1]) for line in lines)
    if not holding_last:
        came = f"no line holding {_shown(entries[-1])} came"
    else:
        missing = entries[len(entries) - len(chain) - 1]
        came = (
            f"{holding_last} line(s) holding {_shown(entries[-1])} came, none in that order: "
            f"no line holding {_shown(missing)} before {lines[chain[0]]!r}"
        )
    return (
        f"waited {seconds:g} s for {args.service} log lines in order: {wanted}; {came} "
        f"since the plan began. Its last lines: {lines[-6:]}"
    )


async def _expect_log_order(run: _Run, args: LogExpect, seconds: float) -> None:
    assert args.in_order is not None
    source = run.target.logs(args.service)
    try:
        async with asyncio.timeout(seconds):
            while True:
                if _chain(source.lines()[run.log_marks[args.service] :], args.in_order)[0]:
                    return
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        raise StepFailed(_order_missing(run, args, seconds)) from None


def _log_pattern(args: LogExpect) -> tuple[str, str]:
    """The regular expression to wait for, and how the expectation reads in a failure."""
    if args.contains is not None:
        # One lookahead per text: all of them on one line, in any order.
        pattern = "^" + "".join(f"(?=.*{re.escape(text)})" for text in args.contains)
        return pattern, "containing all of " + ", ".join(repr(text) for text in args.contains)
    assert args.line is not None
    return args.line, f"matching /{args.line}/"


def _log_missing(run: _Run, args: LogExpect, seconds: float) -> str:
    if args.in_order is not None:
        return _order_missing(run, args, seconds)
    _, wanted = _log_pattern(args)
    tail = run.target.logs(args.service).lines()[-5:]
    return (
        f"waited {seconds:g} s for a {args.service} log line {wanted}; none came. "
        f"Its last lines: {tail}"
    )


async def _expect_log(run: _Run, args: LogExpect, bound: float) -> None:
    if not run.target.supports(args.service, Capability.LOGS):
        raise StepFailed(f"the target offers no {args.service} logs")
    seconds = min(args.within, bound)
    if args.in_order is not None:
        await _expect_log_order(run, args, seconds)
        return
    pattern, _ = _log_pattern(args)
    try:
        async with asyncio.timeout(seconds):
            await run.target.logs(args.service).wait_for(pattern, since=run.log_marks[args.service])
    except TimeoutError:
        raise StepFailed(_log_missing(run, args, seconds)) from None


def _expect_stored(ide: Ide, args: StoredExpect) -> None:
    if args.session is not None and ide.stored_session_id != args.session:
        raise StepFailed(
            f"the IDE's preferences hold session {ide.stored_session_id}, expected {args.session}"
        )
    if args.agent is not None and ide.stored_agent_type != args.agent:
        raise StepFailed(
            f"the IDE's preferences hold agent {ide.stored_agent_type}, expected {args.agent}"
        )


def _expect_created(ide: Ide, args: CreatedExpect) -> None:
    body = ide.last_create_body
    if body is None:
        raise StepFailed(
            "the IDE got no successful POST /sessions answer (no create yet, or each one fell "
            "back to a local id)"
        )
    wanted: dict[str, object] = {
        "session_id": args.session_id,
        "current_agent": args.current_agent,
        "message_count": args.message_count,
    }
    for name, value in wanted.items():
        if value is None:
            continue
        if name not in body:
            raise StepFailed(f"the create answer has no {name} (it has {sorted(body)})")
        if body[name] != value:
            raise StepFailed(f"the create answer's {name} is {body[name]!r}, expected {value!r}")
    for name in args.present:
        if body.get(name) is None:
            has = "it is null" if name in body else f"it has {sorted(body)}"
            raise StepFailed(f"the create answer has no {name} ({has})")


def chat_as_read(items: list[ChatEntry]) -> list[ChatEntry]:
    """Consecutive assistant bubbles as one reply, their texts joined."""
    joined: list[ChatEntry] = []
    for item in items:
        if item.kind == "assistant" and joined and joined[-1].kind == "assistant":
            joined[-1] = ChatEntry("assistant", joined[-1].text + item.text)
        else:
            joined.append(item)
    return joined


def _chat_matches(item: ChatEntry, expected: ChatItemExpect) -> bool:
    return (
        item.kind == expected.kind
        and (expected.text is None or item.text == expected.text)
        and (expected.contains is None or expected.contains in item.text)
    )


def _expect_chat(ide: Ide, args: ChatExpect) -> None:
    items = chat_as_read(ide.chat_items)
    position = 0
    for number, expected in enumerate(args.items, start=1):
        found = next(
            (i for i in range(position, len(items)) if _chat_matches(items[i], expected)), None
        )
        if found is None:
            after = f" after item {position}" if position else ""
            shown = [f"{item.kind}: {item.text[:60]!r}" for item in items[:10]]
            holds = (
                f"it shows {len(items)} item(s), consecutive assistant bubbles read as one: {shown}"
                if items
                else "it is empty"
            )
            raise StepFailed(
                f"the chat has no item {expected.model_dump(exclude_none=True)!r}{after} "
                f"(expected item {number} of {len(args.items)}); {holds}"
            )
        position = found + 1


async def _network(run: _Run, args: NetworkArgs) -> None:
    async def apply(proxy: FaultProxy) -> None:
        if args.fault == "down":
            proxy.down()
        elif args.fault == "up":
            proxy.up()
        elif args.fault == "cut":
            await proxy.cut()
        elif args.fault == "reset":
            await proxy.reset()
        elif args.fault == "latency":
            proxy.add_fault(Latency(ms=args.ms or 0, jitter_ms=args.jitter_ms))
        elif args.fault == "timeout":
            proxy.add_fault(Timeout())
        else:
            await _healed(proxy)

    if args.hop == "runtime":
        if not run.target.has_runtime_hop:
            raise StepFailed("the target offers no fault proxy between gateway and runtime")
        run.hop_touched = True
        await run.target.on_runtime_hop(apply)
    else:
        await apply(run.proxy)


async def _durability(run: _Run, args: DurabilityArgs) -> str:
    """X-DUR-1 as a step: the IDEs of the run, not the plan's IDE, under the schedule."""
    endpoints = run.target.endpoints
    assert endpoints is not None
    given = None if isinstance(args.faults, int) else [f.model_dump() for f in args.faults]
    settings = DurabilitySettings(
        ides=args.ides,
        faults=args.faults if isinstance(args.faults, int) else 0,
        seed=args.seed,
        schedule=schedule_from(given) if given is not None else None,
        fault_names=tuple(args.only),
    )
    try:
        result = await run_durability(
            run.target,
            endpoints,
            settings,
            profiles=run.target.profiles,
            turn_timeout=run.target.turn_timeout,
        )
    except NotControllable as exc:
        raise StepFailed(str(exc)) from None
    if not result.passed:
        raise StepFailed(result.render())
    return result.checked.summary()


async def _healed(proxy: FaultProxy) -> None:
    proxy.clear_faults()
    proxy.up()


async def _service(run: _Run, action: str, service: Service) -> None:
    target = run.target
    if action in ("stop", "kill"):
        await (target.stop_service if action == "stop" else target.kill_service)(service)
        run.stopped.add(service)
    elif action == "start":
        await target.start_service(service)
        run.stopped.discard(service)
    elif action == "restart":
        await target.restart_service(service)
        run.stopped.discard(service)
    elif action == "pause":
        await target.pause_service(service)
        run.paused.add(service)
    else:
        await target.resume_service(service)
        run.paused.discard(service)


async def _execute(run: _Run, step: Step, bound: float) -> str | None:
    """Carry out one step; what it returns is what `as:` saves."""
    args = type(step.args).model_validate(run.resolved(step.args.model_dump(exclude_none=True)))
    ide = run.ide
    match args:
        case SessionArg() if step.action == "switch_to":
            await ide.switch_to(args.session)
            run.remember_session(args.session)
        case TextArg():
            await ide.send(args.text)
        case ReplyExpect():
            event = await _expect_turn(run, "reply", bound)
            assert isinstance(event, TurnEnd)
            _expect_text(event.text, args)
            return event.text
        case SwitchAgentArgs():
            await ide.switch_agent(args.agent, args.content)
        case EditArgs():
            await ide.decide("edit", args.arguments, None)
        case RejectArgs():
            await ide.decide("reject", None, args.feedback)
        case WorkspaceFile():
            ide.put_file(args.path, args.content)
        case ServiceArg():
            await _service(run, step.action, args.service)
        case NetworkArgs():
            await _network(run, args)
        case DurabilityArgs():
            return await _durability(run, args)
        case SecondsArg():
            await asyncio.sleep(args.seconds)
        case StateExpect():
            expected = args.for_client(run.client)
            if ide.state != expected:
                raise StepFailed(
                    f"the session manager is {ide.state!r}, expected {expected!r} "
                    f"(the {run.client} client)"
                )
        case SessionExpect():
            current = ide.current_session_id
            if current is None:
                raise StepFailed("the IDE has no current session")
            if args.equals is not None and current != args.equals:
                raise StepFailed(f"the current session is {current}, expected {args.equals}")
            if args.matches is not None and not re.search(args.matches, current):
                raise StepFailed(f"the current session {current} does not match /{args.matches}/")
            return current
        case ToolCallExpect():
            call = await _expect_turn(run, "tool call", bound)
            assert isinstance(call, dict)
            if args.tool is not None and call.get("tool_name") != args.tool:
                raise StepFailed(
                    f"a tool call for {call.get('tool_name')!r}, expected {args.tool!r}"
                )
            if args.requires_approval is not None and (
                call.get("requires_approval") != args.requires_approval
            ):
                raise StepFailed(f"requires_approval is {call.get('requires_approval')}")
            return str(call.get("call_id"))
        case HistoryExpect():
            await _expect_history(run, args)
        case SessionArg() if step.action == "expect_connected":
            if ide.connected_session_id != args.session:
                raise StepFailed(
                    f"the WebSocket is connected to {ide.connected_session_id}, "
                    f"expected {args.session}"
                )
        case SessionArg() if step.action == "expect_closed":
            if args.session not in ide.closed_session_ids:
                raise StepFailed(
                    f"the WebSocket to {args.session} was not closed "
                    f"(closed: {ide.closed_session_ids or 'none'})"
                )
        case SessionArg() if step.action == "expect_listed":
            response = await run.http.get("/sessions")
            if response.status_code != 200:
                # A failed list is not an empty one: say what the gateway answered.
                raise StepFailed(
                    f"the session list answered {response.status_code}: {response.text[:200]}"
                )
            ids = [info.get("session_id") for info in response.json().get("sessions", [])]
            if args.session not in ids:
                raise StepFailed(f"{args.session} is not in the session list ({len(ids)} listed)")
        case LogExpect():
            await _expect_log(run, args, bound)
        case StoredExpect():
            _expect_stored(ide, args)
        case CreatedExpect():
            _expect_created(ide, args)
        case ChatExpect():
            _expect_chat(ide, args)
        case ErrorExpect():
            event = await _expect_turn(run, "error", bound)
            assert isinstance(event, TurnEnd)
            if args.contains is not None and args.contains not in event.text:
                raise StepFailed(f"the error {event.text!r} does not contain {args.contains!r}")
            return event.text
        case _ if step.action == "open_panel":
            await ide.open_panel()
        case _ if step.action == "back_to_list":
            await ide.back_to_list()
        case _ if step.action == "new_session":
            session_id = await ide.new_session()
            run.remember_session(session_id)
            return session_id
        case _ if step.action == "restart_ide":
            await ide.restart()
        case _ if step.action == "approve":
            await ide.decide("approve", None, None)
        case _:
            raise StepFailed(f"no handler for action {step.action!r}")
    return None


async def _run_steps(run: _Run, result: ScenarioResult, step_timeout: float) -> None:
    steps = run.scenario.steps
    for position, step in enumerate(steps):
        started = time.perf_counter()
        bound = step.within or step_timeout
        record = StepResult(step.index, step.line, step.action, step.describe(), "passed")
        result.steps.append(record)
        began = time.monotonic()
        try:
            async with asyncio.timeout(bound) as clock:
                saved = await _execute(run, step, bound)
        except TimeoutError as exc:
            record.status = "failed"
            if clock.expired():
                record.message = _timed_out(run, step, bound, began)
            else:
                # A wait inside the step gave up before the step's own time was out.
                record.message = (
                    f"{step.action} gave up waiting after {time.monotonic() - began:.1f} s "
                    f"of its {bound:g} s: {_explain(exc)}"
                )
        except StepFailed as exc:
            record.status = "failed"
            record.message = str(exc)
        except (
            IdeError,
            OSError,
            httpx.HTTPError,
            WebSocketException,
            RuntimeError,
            ValueError,
        ) as exc:
            record.status = "failed"
            record.message = f"{step.action} failed: {_explain(exc)}"
        else:
            if step.save_as is not None and saved is not None:
                run.variables[step.save_as] = saved
        record.duration = time.perf_counter() - started
        known = step.known_failure.get(run.client)
        if known is not None:
            number = f"step {step.index + 1}"
            if record.status == "failed":
                # The real client cannot do this; what follows would only test the simulator.
                record.status = "known failure"
                record.trace = run.ide.trace_tail(12)
                result.notes.append(f"{number} known to fail with the {run.client} client: {known}")
                result.steps.extend(
                    StepResult(s.index, s.line, s.action, s.describe(), "not run")
                    for s in steps[position + 1 :]
                )
                return
            result.notes.append(
                f"{number} is known to fail with the {run.client} client ({known}), but it passed"
            )
        if record.status == "failed":
            record.trace = run.ide.trace_tail(12)
            result.status = "failed"
            result.message = f"step {step.index + 1} ({step.action}): {record.message}"
            result.steps.extend(
                StepResult(s.index, s.line, s.action, s.describe(), "not run")
                for s in steps[position + 1 :]
            )
            return


async def _heal(run: _Run) -> None:
    await _healed(run.proxy)
    if run.hop_touched:
        await run.target.on_runtime_hop(_healed)
    for service in list(run.paused):
        await run.target.resume_service(service)
    for service in list(run.stopped):
        await run.target.start_service(service)


async def run_scenario(
    scenario: Scenario,
    target: TargetRunner,
    make_ide: IdeFactory,
    step_timeout: float = 30.0,
    client: Client = "designed",
) -> ScenarioResult:
    """One run of a plan with one client model (the IDE `make_ide` makes must be of that model)."""
    result = ScenarioResult(scenario.id, scenario.title, scenario.source, "passed", client=client)
    started = time.perf_counter()
    missing = missing_preconditions(scenario, target, client)
    if missing:
        result.status, result.message = "skipped", "; ".join(missing)
        return result
    endpoints = target.endpoints
    assert endpoints is not None
    host, _, port = endpoints.gateway_url.removeprefix("http://").partition("/")[0].rpartition(":")
    # Log expectations only look at what was logged while this scenario ran.
    marks: dict[Service, int] = {}
    for service in SERVICES:
        if target.supports(service, Capability.LOGS):
            marks[service] = len(target.logs(service).lines())
    async with (
        FaultProxy(host.strip("[]"), int(port)) as proxy,
        httpx.AsyncClient(
            base_url=endpoints.gateway_url, headers=endpoints.client_headers(), timeout=step_timeout
        ) as http,
    ):
        base_path = endpoints.gateway_url.partition("//")[2].partition("/")[2]
        ide_url = proxy.url() + (f"/{base_path}" if base_path else "")
        ide = await make_ide(ide_url)
        run = _Run(scenario, target, ide, proxy, http, marks, client)
        run.variables["run"] = secrets.token_hex(4)
        try:
            await _run_steps(run, result, step_timeout)
        finally:
            await ide.close()
            await _heal(run)
    result.duration = time.perf_counter() - started
    return result
