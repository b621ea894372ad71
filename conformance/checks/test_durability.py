"""X-DUR-1: durability under a fault schedule, checked the way distributed-systems testers do.

Many simulated IDEs create sessions, chat, switch and resume through the gateway while a nemesis
kills, pauses and restarts the runtime, restarts the gateway and cuts, resets, refuses and slows
connections on either hop. Every operation is recorded with its outcome (`ok`, `fail`,
`unknown`); after healing, every session's history is read through the gateway and the checker
compares the two (simulators/durability, docs/durability.md).

The default run is short (20 IDEs, 20 faults spaced closely); `SESSIONLAB_DURABILITY_IDES`,
`SESSIONLAB_DURABILITY_FAULTS`, `SESSIONLAB_DURABILITY_SEED` and
`SESSIONLAB_DURABILITY_FAULT_NAMES` (comma-separated, e.g. `restart,cut@ide`) change it, and
`sessionlab durability` runs it on its own, for as long as asked.
"""

import json
import os

import pytest

from conformance.failures import Expect
from conformance.target_runner import TargetRunner
from conformance.transcript import Entry, Transcript
from simulators.durability import DurabilitySettings, run_durability
from simulators.durability.nemesis import controllable

pytestmark = pytest.mark.asyncio

DEFAULT_IDES = 20
DEFAULT_FAULTS = 20
# Anomalies spelled out in the failure's message; the rest are in the transcript.
SHOWN = 5


def _number(variable: str, default: int) -> int:
    value = os.environ.get(variable, "")
    return int(value) if value.strip().isdigit() else default


def settings_from_environment() -> DurabilitySettings:
    seed = os.environ.get("SESSIONLAB_DURABILITY_SEED", "")
    names = os.environ.get("SESSIONLAB_DURABILITY_FAULT_NAMES", "")
    return DurabilitySettings(
        ides=_number("SESSIONLAB_DURABILITY_IDES", DEFAULT_IDES),
        faults=_number("SESSIONLAB_DURABILITY_FAULTS", DEFAULT_FAULTS),
        seed=int(seed) if seed.strip().isdigit() else None,
        fault_names=tuple(name.strip() for name in names.split(",") if name.strip()),
    )


@pytest.mark.req("X-DUR-1")
async def test_nothing_acknowledged_is_lost_under_a_fault_schedule(
    sessionlab_target: TargetRunner,
    profiles: frozenset[str],
    transcript: Transcript,
) -> None:
    """X-DUR-1: "nothing acknowledged is lost: once the faults are healed, every session whose
    create was answered with an id is listed and its history is 200, and every turn whose final
    frame arrived has its user message and its reply in that history, each stored once, in the
    order the turns were acknowledged; no message appears that no IDE sent." Operations that
    ended unknown are reported, never failed: "An operation that ended without an answer ... may
    or may not have taken effect"."""
    reason = controllable(sessionlab_target)
    if reason is not None:
        pytest.skip(reason)
    endpoints = sessionlab_target.endpoints
    assert endpoints is not None
    result = await run_durability(
        sessionlab_target,
        endpoints,
        settings_from_environment(),
        profiles=profiles,
        turn_timeout=sessionlab_target.turn_timeout,
        announce=transcript.note,
    )
    transcript.note(result.render())
    for entry in result.anomaly_details():
        transcript.note(json.dumps(entry, ensure_ascii=False))
    # The whole time axis, unshortened, for the report's timeline (a note would be cut short).
    timeline = {"operations": result.as_dict()["timeline"], "faults": result.as_dict()["faults"]}
    transcript.entries.append(Entry(0.0, "timeline", json.dumps(timeline)))
    shown = "; ".join(f"{a['kind']}: {a['what']}" for a in result.anomaly_details()[:SHOWN])
    Expect("X-DUR-1").that(
        result.passed,
        "no acknowledged create or turn lost, no message stored twice, out of order or unsent",
        f"{result.checked.summary()} ({shown})",
        reproduce=result.replay_line().removeprefix("replay: "),
    )
    acknowledged = result.op_counts().get("turn", {}).get("ok", 0)
    Expect("X-DUR-1").that(
        acknowledged > 0,
        "turns acknowledged under the schedule, for the checker to judge",
        f"none of {sum(result.op_counts().get('turn', {}).values())} turns was acknowledged",
    )
