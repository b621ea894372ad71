"""IDE actions: what the user does, carried out by the simulated IDE."""

from scenarios.actions.context import Run
from scenarios.model import (
    EditArgs,
    NoArgs,
    RejectArgs,
    SessionArg,
    SwitchAgentArgs,
    TextArg,
    WorkspaceFile,
)


async def open_panel(run: Run, args: NoArgs, bound: float) -> None:
    await run.ide.open_panel()


async def new_session(run: Run, args: NoArgs, bound: float) -> str:
    session_id = await run.ide.new_session()
    run.remember_session(session_id)
    return session_id


async def switch_to(run: Run, args: SessionArg, bound: float) -> None:
    await run.ide.switch_to(args.session)
    run.remember_session(args.session)


async def send(run: Run, args: TextArg, bound: float) -> None:
    await run.ide.send(args.text)


async def back_to_list(run: Run, args: NoArgs, bound: float) -> None:
    await run.ide.back_to_list()


async def restart_ide(run: Run, args: NoArgs, bound: float) -> None:
    await run.ide.restart()


async def switch_agent(run: Run, args: SwitchAgentArgs, bound: float) -> None:
    await run.ide.switch_agent(args.agent, args.content)


async def approve(run: Run, args: NoArgs, bound: float) -> None:
    await run.ide.decide("approve", None, None)


async def edit(run: Run, args: EditArgs, bound: float) -> None:
    await run.ide.decide("edit", args.arguments, None)


async def reject(run: Run, args: RejectArgs, bound: float) -> None:
    await run.ide.decide("reject", None, args.feedback)


async def workspace_file(run: Run, args: WorkspaceFile, bound: float) -> None:
    run.ide.put_file(args.path, args.content)
