"""What SIGINT and SIGTERM do to a command that launches services or containers.

Without this, SIGTERM (a CI timeout, a container stop) ends the process at once and whatever it
launched runs on, its run directory left in /tmp. Here the first signal unwinds the command as
Ctrl-C does (KeyboardInterrupt: pytest tears its fixtures down, every `finally` runs), so each
target closes the way it would at the end of a run; then the targets still open are closed, and
the command exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM). A second
signal exits at once: the watchdog of each launched target (conformance.targets.watchdog) removes
what is left when it sees this process gone, as it does after a `kill -9`.
"""

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """Raised in the main thread by the first SIGINT or SIGTERM."""

    def __init__(self, signum: signal.Signals) -> None:
        super().__init__(signum.name)
        self.signum = signum


def exit_status(signum: signal.Signals) -> int:
    return 128 + int(signum)


class _Stopper:
    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        # Once the command's own work is over, a first signal must not break off the closing of
        # the targets that is going on: it only sets the exit status.
        self.closing = False

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            # Whoever sends a second signal will not wait for a clean stop.
            os._exit(exit_status(signal.Signals(signum)))
        self.received = signal.Signals(signum)
        if not self.closing:
            raise Stopped(self.received)


def run_stoppably(work: Callable[[], int], prog: str) -> int:
    """Run `work` (a command) so that a signal stops and removes what it launched first."""
    from conformance.target_runner import close_open_runners

    if threading.current_thread() is not threading.main_thread():
        return work()  # only the main thread can take signals; nothing to set up
    stopper = _Stopper()
    previous = {signum: signal.signal(signum, stopper.handle) for signum in SIGNALS}
    try:
        try:
            code = work()
        except KeyboardInterrupt:
            if stopper.received is None:
                # A KeyboardInterrupt nobody sent as a signal (raised in code): keep its meaning.
                stopper.received = signal.SIGINT
            code = exit_status(stopper.received)
        finally:
            stopper.closing = True
            # Whatever the interrupted command had no chance to close (it was stopped between
            # starting a target and the `try` that closes it) is closed here.
            close_open_runners()
        if stopper.received is not None:
            print(
                f"{prog}: stopped by {stopper.received.name}; what it launched is stopped "
                "and removed",
                file=sys.stderr,
                flush=True,
            )
            return exit_status(stopper.received)
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
