"""`expect_log`: a service logged a line holding some texts, matching a regex, or lines in order;
only what was logged while the plan ran counts."""

import asyncio
import re

from conformance.targets import Capability
from scenarios.actions.context import Run, StepFailed
from scenarios.actions.turns import POLL_SECONDS
from scenarios.model import LogExpect


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


def _order_missing(run: Run, args: LogExpect, seconds: float) -> str:
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


async def _expect_log_order(run: Run, args: LogExpect, seconds: float) -> None:
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


def _log_missing(run: Run, args: LogExpect, seconds: float) -> str:
    if args.in_order is not None:
        return _order_missing(run, args, seconds)
    _, wanted = _log_pattern(args)
    tail = run.target.logs(args.service).lines()[-5:]
    return (
        f"waited {seconds:g} s for a {args.service} log line {wanted}; none came. "
        f"Its last lines: {tail}"
    )


async def expect_log(run: Run, args: LogExpect, bound: float) -> None:
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


def log_timed_out(run: Run, args: LogExpect, bound: float, began: float) -> str:
    """The step's own time ran out before the log's `within`: the same words as a log missing."""
    return _log_missing(run, args, bound)
