"""`--keep-run DIR`: what a run made, kept for the tester to read after it ended.

DIR gets `logs/<service>.log` (each service's log as the run saw it), `data/` (the stores of the
services sessionlab launched: the reference in process, a process or container target) and the
run's report with its transcripts (`report.json` for verify, `plans.json` for run). Without the
option all of it is temporary and removed when the run ends.
"""

from pathlib import Path

from conformance import secrecy
from conformance.target_runner import TargetRunner
from conformance.targets import Capability
from conformance.targets.base import SERVICES

DATA = "data"
LOGS = "logs"


def keep_logs(runner: TargetRunner, keep: Path) -> list[Path]:
    """Each service's log lines, unless the target already writes that file there itself (a
    launched target keeps its logs in its run folder, which is `keep`)."""
    written: list[Path] = []
    for service in SERVICES:
        if not runner.supports(service, Capability.LOGS):
            continue
        path = keep / LOGS / f"{service}.log"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = runner.logs(service).lines()
        path.write_text(secrecy.redact("".join(f"{line}\n" for line in lines)), encoding="utf-8")
        written.append(path)
    return written


def describe(keep: Path) -> str:
    kept = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in keep.iterdir())
    return f"kept in {keep}: {', '.join(kept) or 'nothing'}"
