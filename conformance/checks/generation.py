"""Generated examples for the property and model checks: budgets, strategies, and running
hypothesis against a target from an async check.

How hypothesis meets the event loop. Each check runs in its own event loop, and its clients (the
`gateway`, `runtime` and `sessions_api` fixtures, sockets from `open_ws`) belong to that loop.
Hypothesis drives examples synchronously, and a coroutine cannot be run to completion from code
already running on its loop. So a check builds its hypothesis test at run time (its budget then
follows `--deep`), hands it to a worker thread with `asyncio.to_thread`, and every example sends its
coroutine back to the check's loop (`on_loop`), which is free meanwhile. The clients stay on the
loop they were made on, no fixture is shared across threads, and hypothesis needs no health check
suppressed for function-scoped fixtures, because the check itself is not `@given`.

Nothing is written to disk (`database=None`: no `.hypothesis` directory in the user's working
directory). Runs differ from one another; the seed of a run goes into each failure's notes and
transcript, and `SESSIONLAB_SEED=<seed>` replays the same examples.
"""

import asyncio
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, Verbosity, example, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure, HypothesisException

from conformance.failures import CheckFailure
from conformance.run_state import Blocked, state
from conformance.transcript import Transcript
from contract.routes import segment

T = TypeVar("T")
SEED_VARIABLE = "SESSIONLAB_SEED"
# Contents the script agent of section 7 reads as a directive are left to the scripted checks.
DIRECTIVES = ("/tool", "/approve", "/switch", "/fail")
CLIENT_TYPES = ("user_message", "tool_result", "switch_agent", "hitl_decision")
ROLES = ("user", "assistant", "system", "tool")
DECISIONS = ("approve", "edit", "reject")
LARGE_CONTENT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Budget:
    """How many examples (and, for a state machine, steps per example) a check may run."""

    examples: int
    deep_examples: int
    steps: int = 0
    deep_steps: int = 0

    def max_examples(self, deep: bool) -> int:
        return self.deep_examples if deep else self.examples

    def step_count(self, deep: bool) -> int:
        return self.deep_steps if deep else self.steps

    def settings(self, deep: bool) -> settings:
        return settings(
            max_examples=self.max_examples(deep),
            stateful_step_count=max(1, self.step_count(deep)),
            # A target answers over the network: a slow example is not a failure.
            deadline=None,
            # A conformance run leaves nothing behind in the user's working directory.
            database=None,
            derandomize=False,
            # No replay from a database, and no `explain` phase: each of its runs costs requests.
            phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
            # One failure, shrunk, is what a report can show; several come as an exception group.
            report_multiple_bugs=False,
            # The blob of @reproduce_failure fits no function a user can decorate: the seed does.
            print_blob=False,
            verbosity=Verbosity.normal,
            # Large contents are built from a short unit repeated, not drawn byte by byte; their
            # generation is not slow, but the first examples' network round trips are counted too.
            suppress_health_check=(HealthCheck.too_slow,),
        )


@cache
def run_seed() -> int:
    """This run's seed: `SESSIONLAB_SEED` when set, else a fresh random one."""
    given_seed = os.environ.get(SEED_VARIABLE, "").strip()
    if given_seed:
        try:
            return int(given_seed)
        except ValueError:
            raise ValueError(f"{SEED_VARIABLE} must be an integer, not {given_seed!r}") from None
    return secrets.randbits(32)


def on_loop(
    loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T], timeout: float
) -> T:
    """Run a coroutine on the check's loop from hypothesis's worker thread and wait for it."""
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise TimeoutError(f"an example took longer than {timeout:g} s") from None


def replay_note() -> str:
    return f"replay this run's examples with {SEED_VARIABLE}={run_seed()}"


def _first_check_failure(error: BaseException) -> CheckFailure | None:
    if isinstance(error, CheckFailure):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _first_check_failure(inner)
            if found is not None:
                return found
    return None


async def run_in_worker(test: Callable[[], None]) -> None:
    """Run a hypothesis test in a worker thread; a failure comes back as its CheckFailure.

    A prerequisite that failed during the run changes what every later example meets (it is
    blocked at once), which hypothesis may take for flakiness of its own: then the check is
    blocked by that prerequisite, as any other check standing on it.
    """
    run = state()
    before = set(run.prerequisites)
    try:
        await asyncio.to_thread(test)
    except HypothesisException as trouble:
        failed = [name for name in run.prerequisites if name not in before]
        if failed:
            raise Blocked(failed[0], run.prerequisites[failed[0]].message) from None
        if not isinstance(trouble, FlakyFailure):
            raise
        # The target did not fail the same way twice (its state moved on): still a failure.
        failure = _first_check_failure(trouble)
        if failure is None:
            raise
        failure.add_note("the target failed this example once but not on replay (flaky)")
        failure.add_note(replay_note())
        raise failure from trouble
    except CheckFailure as failure:
        failure.add_note(replay_note())
        raise


async def for_all(
    strategy: st.SearchStrategy[T],
    check: Callable[[T], Awaitable[None]],
    *,
    budget: Budget,
    deep: bool,
    transcript: Transcript,
    timeout: float,
    always: Sequence[T] = (),
) -> None:
    """Run `check` on generated examples, and first on each of `always`; a failure is shrunk to a
    minimal example.

    The transcript restarts with every example, so a failure's transcript is the minimal example's
    (hypothesis runs it last).
    """
    loop = asyncio.get_running_loop()

    def run_example(value: T) -> None:
        transcript.entries.clear()
        transcript.note(f"generated example {shown(value, 200)} (seed {run_seed()})")

        async def checked() -> None:
            await check(value)

        on_loop(loop, checked(), timeout)

    test = given(strategy)(run_example)
    for value in always:
        test = example(value)(test)
    test = seed(run_seed())(budget.settings(deep)(test))
    await run_in_worker(test)


# Showing generated values in messages


def shown(value: object, limit: int = 60) -> str:
    """A value as a message shows it: JSON, unicode readable but invisible characters escaped, a
    long one cut with its size."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    # json.dumps escapes the C0 controls; the other invisible characters are spelled out too.
    text = "".join(c if c.isprintable() else _escaped(c) for c in text)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str) else len(text)
    return text[:limit] + f"… ({size} characters)"


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def path_segment(value: str) -> str:
    """One path segment carrying exactly `value`: `/` and every non-ASCII character encoded, and
    the dot segments `.` and `..` too (left bare, a client or server would resolve them away).
    The encoding of every route's values (contract.routes), for an id sent with `Route.raw_path`."""
    return segment(value)


# Strategies


def _repeated(unit: str, size: int) -> str:
    """`unit` repeated up to `size` UTF-8 bytes (at least once)."""
    return unit * max(1, size // len(unit.encode()))


def _no_whitespace() -> st.SearchStrategy[str]:
    # A large content of few words: the script agent streams one chunk per word.
    return st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc"))


def long_text(max_bytes: int, min_bytes: int = 1) -> st.SearchStrategy[str]:
    """Long text built from a short unicode unit repeated: cheap to draw, shrinks to short."""
    unit = st.text(_no_whitespace(), min_size=1, max_size=8)
    return st.builds(_repeated, unit, st.integers(min_bytes, max_bytes))


def session_ids() -> st.SearchStrategy[str]:
    """Ids no target made: any unicode text (controls, slashes, quotes, dots), well-formed unknown
    ids, path punctuation, and ids up to 1,000 characters."""
    return st.one_of(
        st.text(min_size=1, max_size=40),
        st.from_regex(r"session_[0-9a-f]{16}", fullmatch=True),
        st.text(st.sampled_from("./\\%?#&;:'\"~ +=@"), min_size=1, max_size=12),
        st.builds(
            lambda unit, size: _repeated(unit, size)[:1000],
            st.text(min_size=1, max_size=4),
            st.integers(64, 1000),
        ),
    )


def is_directive(content: str) -> bool:
    return content.partition(" ")[0] in DIRECTIVES


# Contents some stores cannot hold as they are (PostgreSQL's text refuses NUL): sent every run.
EDGE_CONTENTS = ("", "\x00", "nul \x00 inside")


def message_contents(max_bytes: int = LARGE_CONTENT_BYTES) -> st.SearchStrategy[str]:
    """User message contents: any unicode (empty included) and large ones up to `max_bytes`."""
    return st.one_of(
        st.text(max_size=100),
        long_text(max_bytes, min_bytes=1000),
    ).filter(lambda content: not is_directive(content))


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=6,
    )


def not_strings() -> st.SearchStrategy[Any]:
    return json_values().filter(lambda value: not isinstance(value, str))


def parses_as_json(text: str | bytes) -> bool:
    try:
        json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def not_json_texts() -> st.SearchStrategy[str]:
    """Text that is not JSON: arbitrary text, and JSON cut short."""
    cut = json_values().map(lambda value: json.dumps(value, ensure_ascii=False)[:-1])
    return st.one_of(st.text(max_size=40), cut).filter(lambda text: not parses_as_json(text))


VALID_FRAMES: dict[str, dict[str, Any]] = {
    "user_message": {"type": "user_message", "content": "hello", "role": "user"},
    "tool_result": {"type": "tool_result", "call_id": "call_0"},
    "switch_agent": {"type": "switch_agent", "agent_type": "coder", "content": "over to you"},
    "hitl_decision": {"type": "hitl_decision", "call_id": "call_0", "decision": "approve"},
}
REQUIRED_FIELDS: tuple[tuple[str, str], ...] = (
    ("user_message", "content"),
    ("user_message", "role"),
    ("tool_result", "call_id"),
    ("switch_agent", "agent_type"),
    ("switch_agent", "content"),
    ("hitl_decision", "call_id"),
    ("hitl_decision", "decision"),
)
ENUM_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("user_message", "role"): ROLES,
    ("hitl_decision", "decision"): DECISIONS,
}


def _without(frame: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in frame.items() if k != key}


def _wrong_value(pair: tuple[str, str]) -> st.SearchStrategy[Any]:
    allowed = ENUM_FIELDS.get(pair)
    if allowed is None:
        return not_strings()
    return st.one_of(not_strings(), st.text(max_size=12).filter(lambda text: text not in allowed))


def _wrong_typed(pair: tuple[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    frame_type, key = pair
    return _wrong_value(pair).map(lambda value: {**VALID_FRAMES[frame_type], key: value})


def malformed_frames() -> st.SearchStrategy[Any]:
    """JSON frames W-BAD-2 refuses: not an object, no type, a type that is not a string or not
    known, a required field missing, or a required field of the wrong type or value."""
    fields = st.sampled_from(REQUIRED_FIELDS)
    return st.one_of(
        json_values().filter(lambda value: not isinstance(value, dict)),
        st.dictionaries(
            st.text(max_size=8).filter(lambda key: key != "type"), json_values(), max_size=3
        ),
        not_strings().map(lambda value: {"type": value, "content": "x", "role": "user"}),
        unknown_types().map(lambda kind: {"type": kind, "content": "x", "role": "user"}),
        fields.map(lambda pair: _without(VALID_FRAMES[pair[0]], pair[1])),
        fields.flatmap(_wrong_typed),
    )


def unknown_types() -> st.SearchStrategy[str]:
    return st.text(max_size=20).filter(lambda kind: kind not in CLIENT_TYPES)


def create_bodies() -> st.SearchStrategy[bytes]:
    """Bodies for POST /sessions beyond none and `{}`: any JSON value, and bytes."""
    return st.one_of(
        json_values().map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
        st.binary(max_size=40),
    )


def stream_bodies(session_id: str) -> st.SearchStrategy[bytes]:
    """Bodies for POST /agent/message/stream that are not a valid request: any JSON but an
    object, bytes, or a valid request for `session_id` with one part missing or wrong-typed."""
    message = VALID_FRAMES["user_message"]
    valid = {"session_id": session_id, "message": message}
    fields = st.sampled_from((("user_message", "content"), ("user_message", "role")))
    broken: st.SearchStrategy[Any] = st.one_of(
        json_values().filter(lambda value: not isinstance(value, dict)),
        st.sampled_from(("session_id", "message")).map(lambda key: _without(valid, key)),
        not_strings().map(lambda value: {**valid, "session_id": value}),
        json_values()
        .filter(lambda value: not isinstance(value, dict))
        .map(lambda value: {**valid, "message": value}),
        st.one_of(not_strings(), unknown_types()).map(
            lambda kind: {**valid, "message": {**message, "type": kind}}
        ),
        fields.map(lambda pair: {**valid, "message": _without(message, pair[1])}),
        fields.flatmap(_wrong_typed).map(lambda frame: {**valid, "message": frame}),
    )
    return st.one_of(
        broken.map(lambda body: json.dumps(body, ensure_ascii=False).encode()),
        st.binary(max_size=40).filter(lambda raw: not parses_as_json(raw)),
    )


def first_difference(sent: str, stored: object) -> str:
    """Where a stored content departs from the one sent, readable for 64 KiB contents too."""
    if not isinstance(stored, str):
        return f"content {shown(stored)}"
    index = next(
        (i for i, (a, b) in enumerate(zip(sent, stored, strict=False)) if a != b),
        min(len(sent), len(stored)),
    )
    return (
        f"content {shown(stored)} ({len(stored)} characters, {len(sent)} sent), first different "
        f"at character {index}: sent {shown(sent[index : index + 12])}, "
        f"stored {shown(stored[index : index + 12])}"
    )
