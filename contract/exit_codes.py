"""The exit statuses of every sessionlab command: what a CI job branches on, so one meaning each.

Here at the bottom with the contract, though they are no part of the protocol, because commands of
every layer return them, the reference's `serve` and `migrate` included."""

from enum import IntEnum


class ExitCode(IntEnum):
    # verify: the target conforms; run, load, durability: everything passed; serve: stopped
    # when asked.
    OK = 0
    # verify: the target does not conform; the others: something checked failed; serve: a
    # service stopped on its own.
    FAILED = 1
    # Options or input files refused before anything ran.
    BAD_INPUT = 2
    # The run itself broke (the target never started, a requirement could not be judged): a CI
    # job must not read it as the target's failure.
    HARNESS_FAILED = 3
    # Stopped by Ctrl-C: 128 + SIGINT, as a shell reports it.
    INTERRUPTED = 130
