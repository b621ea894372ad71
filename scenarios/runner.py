"""Run a scenario against a target: each step carried out by its action (scenarios.actions)
within its time bound, a failure told in the plan's words, the target healed at the end."""

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

import httpx
from websockets.exceptions import WebSocketException

from conformance.target_runner import TargetRunner
from conformance.targets import Capability, Service
from conformance.targets.base import SERVICES
from scenarios.actions import ACTIONS
from scenarios.actions.context import Run, StepFailed
from scenarios.actions.expect import chat_as_read as chat_as_read
from scenarios.actions.fault import heal
from scenarios.ide_protocol import ChatEntry as ChatEntry
from scenarios.ide_protocol import Ide
from scenarios.model import Args, Client, Scenario, Step
from scenarios.results import ScenarioResult, StepResult
from simulators.faultproxy import FaultProxy
from simulators.ide import IdeError

# `chat_as_read` and `ChatEntry` (imported `as` themselves) are re-exported: a run's chat as the
# user reads it is part of what callers of the runner check.
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


def _timed_out(run: Run, step: Step, args: Args, bound: float, began: float) -> str:
    """What a step that ran out of time awaited, and what came instead."""
    explain = ACTIONS[step.action].timed_out
    if explain is not None:
        return explain(run, args, bound, began)
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


async def _run_steps(run: Run, result: ScenarioResult, step_timeout: float) -> None:
    steps = run.scenario.steps
    for position, step in enumerate(steps):
        started = time.perf_counter()
        bound = step.within or step_timeout
        record = StepResult(step.index, step.line, step.action, step.describe(), "passed")
        result.steps.append(record)
        began = time.monotonic()
        args = step.args
        try:
            async with asyncio.timeout(bound) as clock:
                args = run.resolved_args(step.args)
                saved = await ACTIONS[step.action].handler(run, args, bound)
        except TimeoutError as exc:
            record.status = "failed"
            if clock.expired():
                record.message = _timed_out(run, step, args, bound, began)
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
        run = Run(scenario, target, ide, proxy, http, marks, client)
        run.variables["run"] = secrets.token_hex(4)
        try:
            await _run_steps(run, result, step_timeout)
        finally:
            await ide.close()
            await heal(run)
    result.duration = time.perf_counter() - started
    return result
