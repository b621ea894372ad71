"""Many simulated IDEs in one process against the reference: each creates two sessions, chats in
both and switches between them. Prints counts, errors and p50/p99 per flow, and the wall time.

    .venv/bin/python benchmarks/many_ides.py [IDES]      (default 200)
"""

import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from conformance.targets.reference_target import ReferenceTarget
from simulators.ide import Ide, IdeSettings
from simulators.ide.approvals import ApproveAll


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def one_ide(index: int, url: str, folder: Path, timings: dict[str, list[float]]) -> None:
    ide = Ide(
        IdeSettings(gateway_url=url, turn_timeout=60), folder / f"{index}.json", policy=ApproveAll()
    )

    async def timed(flow: str, step: object) -> object:
        started = time.perf_counter()
        result = await step  # type: ignore[misc]
        timings[flow].append(time.perf_counter() - started)
        return result

    try:
        first = await timed("create", ide.new_session())
        await ide.send(f"hello {index}")
        await timed("turn", ide.final_reply())
        await timed("create", ide.new_session())
        await ide.send(f"second {index}")
        await timed("turn", ide.final_reply())
        await timed("switch", ide.switch_to(str(first)))
        await ide.send(f"back {index}")
        await timed("turn", ide.final_reply())
        if ide.errors:
            raise RuntimeError(ide.errors[0])
    finally:
        await ide.close()


async def main(count: int) -> int:
    timings: dict[str, list[float]] = defaultdict(list)
    async with ReferenceTarget(turn_timeout=60) as target:
        url = target.endpoints.gateway_url
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *(one_ide(i, url, Path(scratch), timings) for i in range(count)),
                return_exceptions=True,
            )
            wall = time.perf_counter() - started
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    print(f"{count} IDEs, {count - len(errors)} completed, {len(errors)} errors, {wall:.1f} s wall")
    for flow, values in sorted(timings.items()):
        print(
            f"  {flow:<7} n={len(values):<5} p50 {statistics.median(values) * 1000:8.1f} ms"
            f"  p99 {percentile(values, 0.99) * 1000:8.1f} ms"
        )
    for error in errors[:5]:
        print(f"  error: {type(error).__name__}: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
