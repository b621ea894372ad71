"""Run a scenario against a target: IDE actions through the simulator, faults through the target
and the fault proxy, expectations checked as each step comes."""

import asyncio
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from conformance.target_runner import TargetRunner
from conformance.targets import Capability, Service
from conformance.targets.base import SERVICES
from scenarios.model import (
    VARIABLE,
    EditArgs,
    ErrorExpect,
    HistoryExpect,
    LogExpect,
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
    SwitchAgentArgs,
    TextArg,
    ToolCallExpect,
    WorkspaceFile,
)
from scenarios.results import ScenarioResult, StepResult
from simulators.faultproxy import FaultProxy, Latency, Timeout
from simulators.ide import IdeError


class StepFailed(AssertionError):
    """An expectation of the plan did not hold; the message says what, in the plan's words."""


class Ide(Protocol):
    """What a scenario drives: one simulated IDE (see simulators/ide)."""

    async def new_session(self) -> str: ...
    async def switch_to(self, session_id: str) -> None: ...
    async def send(self, text: str) -> None: ...
    async def final_reply(self) -> str: ...
    async def next_tool_call(self) -> dict[str, Any]: ...
    async def next_error(self) -> str: ...
    async def decide(
        self, decision: str, arguments: dict[str, Any] | None, feedback: str | None
    ) -> None: ...
    async def switch_agent(self, agent: str, content: str) -> None: ...
    async def restart(self) -> None: ...
    async def close(self) -> None: ...
    def put_file(self, path: str, content: str) -> None: ...
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
    def trace_tail(self, count: int) -> list[str]: ...


IdeFactory = Callable[[str], Awaitable[Ide]]

NEEDS: dict[str, tuple[Service, Capability]] = {
    "runtime-control": ("runtime", Capability.STOP),
    "gateway-control": ("gateway", Capability.STOP),
    "kill": ("runtime", Capability.KILL),
    "pause": ("runtime", Capability.PAUSE),
    "logs": ("runtime", Capability.LOGS),
}


def missing_preconditions(scenario: Scenario, target: TargetRunner) -> list[str]:
    reasons = [
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


async def _expect_text(text: str, args: ReplyExpect, what: str) -> None:
    if args.equals is not None and text != args.equals:
        raise StepFailed(f"{what} was {text!r}, expected {args.equals!r}")
    if args.contains is not None and args.contains not in text:
        raise StepFailed(f"{what} {text!r} does not contain {args.contains!r}")
    if args.matches is not None and not re.search(args.matches, text):
        raise StepFailed(f"{what} {text!r} does not match /{args.matches}/")


async def _history(run: _Run, session_id: str) -> dict[str, Any]:
    response = await run.http.get(f"/sessions/{session_id}/history")
    if response.status_code != 200:
        raise StepFailed(
            f"history of {session_id} answered {response.status_code}: {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


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
    for index, expected in enumerate(args.messages or []):
        if index >= len(messages):
            raise StepFailed(f"history of {session_id} ends after {len(messages)} messages")
        actual = messages[index]
        content = actual.get("content") or ""
        if (
            actual.get("role") != expected.role
            or (expected.content is not None and content != expected.content)
            or (expected.contains is not None and expected.contains not in content)
        ):
            raise StepFailed(
                f"message {index + 1} of {session_id} is {actual!r}, expected "
                f"{expected.model_dump(exclude_none=True)!r}"
            )


async def _expect_log(run: _Run, args: LogExpect) -> None:
    if not run.target.supports(args.service, Capability.LOGS):
        raise StepFailed(f"the target offers no {args.service} logs")
    logs = run.target.logs(args.service)
    try:
        async with asyncio.timeout(args.within):
            await logs.wait_for(args.line, since=run.log_marks[args.service])
    except TimeoutError:
        tail = logs.lines()[-5:]
        raise StepFailed(
            f"the {args.service} logged no line matching /{args.line}/ within {args.within} s; "
            f"its last lines: {tail}"
        ) from None


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


async def _execute(run: _Run, step: Step) -> str | None:
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
            text = await ide.final_reply()
            await _expect_text(text, args, "the reply")
            return text
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
        case SecondsArg():
            await asyncio.sleep(args.seconds)
        case StateExpect():
            if ide.state != args.state:
                raise StepFailed(f"the session manager is {ide.state!r}, expected {args.state!r}")
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
            call = await ide.next_tool_call()
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
            listed = (await run.http.get("/sessions")).json()
            ids = [info.get("session_id") for info in listed.get("sessions", [])]
            if args.session not in ids:
                raise StepFailed(f"{args.session} is not in the session list ({len(ids)} listed)")
        case LogExpect():
            await _expect_log(run, args)
        case ErrorExpect():
            try:
                error = await ide.next_error()
            except TimeoutError:
                raise StepFailed("the IDE saw no error (the turn got no answer at all)") from None
            if args.contains is not None and args.contains not in error:
                raise StepFailed(f"the error {error!r} does not contain {args.contains!r}")
            return error
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
        try:
            async with asyncio.timeout(bound):
                saved = await _execute(run, step)
        except TimeoutError:
            record.status = "failed"
            record.message = f"did not complete within {bound:g} s"
        except StepFailed as exc:
            record.status = "failed"
            record.message = str(exc)
        except (IdeError, OSError, httpx.HTTPError, RuntimeError, ValueError) as exc:
            record.status = "failed"
            record.message = f"{type(exc).__name__}: {exc}"
        else:
            if step.save_as is not None and saved is not None:
                run.variables[step.save_as] = saved
        record.duration = time.perf_counter() - started
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
    scenario: Scenario, target: TargetRunner, make_ide: IdeFactory, step_timeout: float = 30.0
) -> ScenarioResult:
    result = ScenarioResult(scenario.id, scenario.title, scenario.source, "passed")
    started = time.perf_counter()
    missing = missing_preconditions(scenario, target)
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
        run = _Run(scenario, target, ide, proxy, http, marks)
        run.variables["run"] = secrets.token_hex(4)
        try:
            await _run_steps(run, result, step_timeout)
        finally:
            await ide.close()
            await _heal(run)
    result.duration = time.perf_counter() - started
    return result
