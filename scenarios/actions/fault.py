"""Faults: services stopped, killed or frozen, network faults on a hop, time let pass, and a
durability run; `heal` undoes what the plan left broken."""

import asyncio

from scenarios.actions.context import Run, StepFailed
from scenarios.model import DurabilityArgs, NetworkArgs, SecondsArg, ServiceArg
from simulators.durability.run import DurabilitySettings, NotControllable, run_durability
from simulators.durability.schedule import schedule_from
from simulators.faultproxy import FaultProxy, Latency, Timeout


async def stop(run: Run, args: ServiceArg, bound: float) -> None:
    await run.target.stop_service(args.service)
    run.stopped.add(args.service)


async def kill(run: Run, args: ServiceArg, bound: float) -> None:
    await run.target.kill_service(args.service)
    run.stopped.add(args.service)


async def start(run: Run, args: ServiceArg, bound: float) -> None:
    await run.target.start_service(args.service)
    run.stopped.discard(args.service)


async def restart(run: Run, args: ServiceArg, bound: float) -> None:
    await run.target.restart_service(args.service)
    run.stopped.discard(args.service)


async def pause(run: Run, args: ServiceArg, bound: float) -> None:
    await run.target.pause_service(args.service)
    run.paused.add(args.service)


async def resume(run: Run, args: ServiceArg, bound: float) -> None:
    await run.target.resume_service(args.service)
    run.paused.discard(args.service)


async def _healed(proxy: FaultProxy) -> None:
    proxy.clear_faults()
    proxy.up()


async def network(run: Run, args: NetworkArgs, bound: float) -> None:
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


async def wait(run: Run, args: SecondsArg, bound: float) -> None:
    await asyncio.sleep(args.seconds)


async def durability(run: Run, args: DurabilityArgs, bound: float) -> str:
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


async def heal(run: Run) -> None:
    """Whatever the plan left broken, repaired: the next plan starts on a whole target."""
    await _healed(run.proxy)
    if run.hop_touched:
        await run.target.on_runtime_hop(_healed)
    for service in list(run.paused):
        await run.target.resume_service(service)
    for service in list(run.stopped):
        await run.target.start_service(service)
