"""The watchdog of a launched target: a small process that cleans up after sessionlab is gone.

sessionlab stops and removes what it launched itself whenever it can: at the end of a run, and on
a first SIGINT or SIGTERM. It cannot when it is killed with SIGKILL, or when a second signal makes
it exit at once. So each launched target starts a watchdog (`python -m
conformance.targets.watchdog RUN_ID`), in a session of its own so that a Ctrl-C at the terminal or
a signal to sessionlab's process group does not reach it, and tells it on a pipe what it would
have to remove: the process groups of the services, their containers, the run directory. When
sessionlab has removed something itself it says so, and the watchdog forgets it.

The pipe's end is the signal: the kernel closes it when sessionlab exits, however it exits. The
watchdog then removes the containers still named, kills the process groups still named and every
process that carries the run's mark in its environment (a service's children that left its group
too), waits for them to go, and removes the directories still named.

A process parented by its launcher dies with it (Linux's parent-death signal) only when it is not
a shell or supervisor with children of its own, and never with its run directory; hence this.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# Every process a launched target starts carries this variable, its run's id: a leftover can
# always be traced back to its run, and found by the watchdog.
RUN_ID_VARIABLE = "SESSIONLAB_RUN_ID"
# Killed processes have this long to be gone before the directories are removed regardless.
GONE_WAIT = 10.0
KINDS = ("group", "container", "dir")


class Watchdog:
    """sessionlab's side: starts the watchdog process and tells it what to remove."""

    def __init__(self, process: "subprocess.Popen[bytes]") -> None:
        self._process = process
        self._lock = threading.Lock()

    @classmethod
    def start(cls, run_id: str) -> "Watchdog":
        process = subprocess.Popen(
            [sys.executable, "-m", "conformance.targets.watchdog", run_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            # A session of its own: the signals meant for sessionlab (and its group) pass it by.
            start_new_session=True,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    def watch(self, kind: str, value: str | int | Path) -> None:
        self._say(f"+{kind} {value}")

    def forget(self, kind: str, value: str | int | Path) -> None:
        self._say(f"-{kind} {value}")

    def _say(self, line: str) -> None:
        assert self._process.stdin is not None
        with self._lock, contextlib.suppress(BrokenPipeError, ValueError):
            # A watchdog gone before its time cannot be helped here; the run goes on without.
            self._process.stdin.write(line.encode("utf-8") + b"\n")
            self._process.stdin.flush()

    def close(self, timeout: float = GONE_WAIT) -> None:
        """The end of the pipe: the watchdog removes whatever is still named, then exits."""
        assert self._process.stdin is not None
        with self._lock, contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


# --- the watchdog process --------------------------------------------------------------------


def _processes(run_id: str, groups: set[int]) -> list[int]:
    """Live processes that are the run's: they carry its mark, or are in a named group whose
    members carry it (so a group id taken by a stranger after ours ended is left alone)."""
    mark = f"{RUN_ID_VARIABLE}={run_id}".encode()
    marked: list[tuple[int, int]] = []
    unmarked: list[tuple[int, int]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        state, group = fields[0], int(fields[2])
        if state in ("Z", "X"):
            continue
        pid = int(entry.name)
        (marked if mark in environ.split(b"\0") else unmarked).append((pid, group))
    ours = {group for _, group in marked} & groups
    return [pid for pid, _ in marked] + [pid for pid, group in unmarked if group in ours]


def _remove_containers(names: set[str]) -> None:
    if not names:
        return
    import docker  # type: ignore[import-untyped]

    try:
        client = docker.from_env(timeout=30)
    except docker.errors.DockerException as exc:
        print(f"sessionlab watchdog: no Docker engine to remove {names}: {exc}", file=sys.stderr)
        return
    try:
        for name in names:
            try:
                client.containers.get(name).remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                print(f"sessionlab watchdog: could not remove {name}: {exc}", file=sys.stderr)
    finally:
        client.close()


def clean_up(run_id: str, named: dict[str, set[str]]) -> None:
    try:
        _remove_containers(named["container"])
    except Exception as exc:  # the processes and folders are still to be removed
        print(f"sessionlab watchdog: could not remove containers: {exc!r}", file=sys.stderr)
    groups = {int(group) for group in named["group"]}
    end = time.monotonic() + GONE_WAIT
    while True:
        left = _processes(run_id, groups)
        if not left or time.monotonic() > end:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    for directory in named["dir"]:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    run_id = argv[0]
    # Ctrl-C at a terminal, or a hang-up, is for sessionlab; this process waits for its pipe.
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    named: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for raw in sys.stdin.buffer:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        sign, (kind, _, value) = line[:1], line[1:].partition(" ")
        if kind not in named:
            continue
        if sign == "+":
            named[kind].add(value)
        elif sign == "-":
            named[kind].discard(value)
    clean_up(run_id, named)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
