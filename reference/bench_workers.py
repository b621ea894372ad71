"""`sessionlab bench`, scale-out section: throughput per core with 1 and with 2 worker processes.

`sessionlab serve --workers N` runs as it is deployed, in a process of its own with its workers;
the client is the bench's process. Both services scale only on PostgreSQL (several runtime
processes need a shared store): with a PostgreSQL URL in SESSIONLAB_BENCH_POSTGRES_URL (or the
tests' SESSIONLAB_TEST_POSTGRES_URL) the whole stack runs with N workers on it; without one only
the gateway does, in front of one runtime on SQLite. Per core is the throughput divided by the
cores the workers can use (no more than the machine has): 1.00x means a second worker adds as much
as the first, on a machine where the client and the other services leave it a core.
"""

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from contract.routes import CREATE_SESSION
from reference.bench import CONCURRENCY, Ratio, Row, Section, Timings, client_of, fetch, timed
from reference.keys import random_key

POSTGRES_VARIABLES = ("SESSIONLAB_BENCH_POSTGRES_URL", "SESSIONLAB_TEST_POSTGRES_URL")
WORKER_COUNTS = (1, 2)
_BANNER_URL = re.compile(r"^\s+(runtime|gateway)\s+(http://\S+)")


def _postgres_url() -> str | None:
    return next((os.environ[name] for name in POSTGRES_VARIABLES if os.environ.get(name)), None)


@contextmanager
def _serving(args: list[str]) -> Iterator[dict[str, str]]:
    """`sessionlab serve ARGS` until the block ends; each service's URL from its banner."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sessionlab.cli", "serve", *args, "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SESSIONLAB_")},
    )
    try:
        assert process.stdout is not None
        urls: dict[str, str] = {}
        for line in process.stdout:
            found = _BANNER_URL.match(line)
            if found:
                urls[found.group(1)] = found.group(2)
            if line.startswith("Stop with"):
                break
        if not urls:
            raise RuntimeError(f"sessionlab serve {' '.join(args)} did not start")
        yield urls
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _creates(gateway: str, n: int) -> Timings:
    async with client_of(gateway) as client:
        for _ in range(CONCURRENCY):
            await fetch(client, CREATE_SESSION)
        return await timed(n, CONCURRENCY, lambda: fetch(client, CREATE_SESSION))


def _measure(workers: int, postgres: str | None, scratch: Path, n: int) -> Timings:
    key = random_key()
    scaled = ["--workers", str(workers), "--internal-key", key]
    if postgres is not None:
        both = [*scaled, "--runtime-port", "0", "--gateway-port", "0", "--database-url", postgres]
        with _serving(both) as urls:
            return asyncio.run(_creates(urls["gateway"], n))
    runtime = ["runtime", "--port", "0", "--internal-key", key, "--data-dir", str(scratch)]
    with _serving(runtime) as runtime_urls:
        gateway = ["gateway", *scaled, "--port", "0", "--runtime-url", runtime_urls["runtime"]]
        with _serving(gateway) as urls:
            return asyncio.run(_creates(urls["gateway"], n))


def scale_out_section(n: int) -> Section:
    """The section: a row per worker count and the ratios between them."""
    postgres = _postgres_url()
    cores = os.cpu_count() or 1
    what = (
        "runtime and gateway scaled, on PostgreSQL"
        if postgres is not None
        else "gateway scaled, one runtime on SQLite (SESSIONLAB_BENCH_POSTGRES_URL scales both)"
    )
    section = Section(
        f"scale-out: POST /sessions through the gateway, concurrency {CONCURRENCY}; {what}"
    )
    measured: dict[int, Timings] = {}
    with tempfile.TemporaryDirectory(prefix="sessionlab-bench-workers-") as scratch:
        for workers in WORKER_COUNTS:
            measured[workers] = _measure(workers, postgres, Path(scratch), n)
    for workers, timings in measured.items():
        per_core = timings.rate / min(workers, cores)
        label = f"{workers} worker{'s' if workers > 1 else ''} (per core {per_core:.1f}/s)"
        section.items.append(Row(label, timings))
    one, two = measured[1], measured[2]
    section.items.append(
        Ratio(
            "2 workers / 1",
            p50=two.p50 / one.p50,
            throughput=two.rate / one.rate,
            per_core=(two.rate / min(2, cores)) / one.rate,
            note=f"{cores} cores on this machine",
        )
    )
    return section
