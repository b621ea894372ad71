"""The many-IDEs benchmark: N simulated IDEs against the reference started as a process target
(sessionlab/reference-process.yaml, the one `sessionlab bench` ships), measured per flow;
docs/load.md has the figures.

    .venv/bin/python benchmarks/many_ides.py [IDES]           # sessionlab load, a process per core
    .venv/bin/python benchmarks/many_ides.py [IDES] --locust  # Locust, a master and 2 workers

Default 1000 IDEs, all connected at once: a ramp-up of 300 s, then 120 s of work, users
thinking 120 to 240 s between two operations (a person reading a reply, working on the code and
writing the next message). Prints the table (p50, p90, p99 per flow, CPU per operation) and
exits 1 if any operation failed. Extra arguments go to `sessionlab load` (e.g.
`--duration 300 --html many.html`) or, with --locust, to the Locust master.
"""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "sessionlab" / "reference-process.yaml"
RAMP_UP, DURATION, THINK = 300, 120, (120, 240)
# Seconds Locust lets the operations in flight end when its time is up (the step timeout, 30 s).
STOP_TIMEOUT = 35


def with_load_tool(ides: int, extra: list[str]) -> int:
    from sessionlab.cli import main

    return main(
        ["load", "--target", str(TARGET), "--ides", str(ides), "--ramp-up", str(RAMP_UP),
         "--duration", str(DURATION), "--think", f"{THINK[0]}-{THINK[1]}", *extra]
    )  # fmt: skip


async def _with_locust(ides: int, extra: list[str]) -> int:
    from conformance.targets.loader import load_target
    from conformance.targets.ports import free_ports

    target = load_target(TARGET)
    async with target:
        endpoints = target.endpoints
        (port,) = free_ports(1)
        locust = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(HERE.parent / "simulators/load/locustfile.py"),
        ]
        env = {**os.environ, "SESSIONLAB_CLIENT_KEY": endpoints.client_key or ""}
        workers = [
            await asyncio.create_subprocess_exec(
                *locust,
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                str(port),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        master = await asyncio.create_subprocess_exec(
            *locust, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "--expect-workers", "2", "--headless", "-u", str(ides), "-r", f"{ides / RAMP_UP:g}",
            "-t", f"{RAMP_UP + DURATION}s", "--host", endpoints.gateway_url,
            "--ide-think", f"{THINK[0]}-{THINK[1]}", "--stop-timeout", str(STOP_TIMEOUT),
            "--only-summary", *extra, env=env,
        )  # fmt: skip
        try:
            return await master.wait()
        finally:
            for worker in workers:
                try:
                    await asyncio.wait_for(worker.wait(), 30)
                except TimeoutError:
                    worker.kill()
                    await worker.wait()


def main(argv: list[str]) -> int:
    locust = "--locust" in argv
    rest = [arg for arg in argv if arg != "--locust"]
    ides = int(rest.pop(0)) if rest and rest[0].isdigit() else 1000
    if locust:
        return asyncio.run(_with_locust(ides, rest))
    return with_load_tool(ides, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
