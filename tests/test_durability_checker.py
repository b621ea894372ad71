"""The durability checker, schedule and timeline as pure functions: each anomaly from a record and
histories written by hand, the schedule replayed from its seed."""

import json
from typing import Any

import pytest

from simulators.durability.checker import check_history
from simulators.durability.record import Operation, Outcome
from simulators.durability.schedule import (
    ScheduleError,
    generate_schedule,
    parse_name,
    schedule_from,
)
from simulators.durability.timeline import timeline_svg

S = "session_00000000000000aa"


def turn(index: int, text: str, outcome: Outcome, start: float, end: float) -> Operation:
    reply = text if outcome == "ok" else None
    return Operation(index, 0, "turn", start, end, outcome, S, text=text, reply=reply)


def create(index: int, outcome: Outcome = "ok", session_id: str = S) -> Operation:
    return Operation(index, 0, "create", 0.0, 0.1, outcome, session_id)


def stored(*texts: str) -> list[dict[str, Any]]:
    """A history where each text is a user message and its echoed reply."""
    return [
        m
        for t in texts
        for m in ({"role": "user", "content": t}, {"role": "assistant", "content": t})
    ]


def kinds(result: Any) -> list[tuple[str, int | None]]:
    return [(anomaly.kind, anomaly.operation) for anomaly in result.anomalies]


def test_a_faithful_history_has_no_anomaly() -> None:
    ops = [create(0), turn(1, "a one", "ok", 1, 2), turn(2, "b two", "ok", 3, 4)]
    result = check_history(ops, {S: stored("a one", "b two")}, {S})
    assert result.passed
    assert result.counts() == {"lost": 0, "duplicated": 0, "out_of_order": 0, "phantom": 0}


def test_an_acknowledged_create_that_is_gone_is_lost() -> None:
    result = check_history([create(0)], {S: None}, set())
    assert kinds(result) == [("lost", 0)]
    assert "not listed and its history does not read" in result.anomalies[0].what


def test_an_acknowledged_turn_without_its_user_message_is_lost() -> None:
    ops = [create(0), turn(1, "a one", "ok", 1, 2), turn(2, "b two", "ok", 3, 4)]
    result = check_history(ops, {S: stored("a one")}, {S})
    assert kinds(result) == [("lost", 2)]
    assert "user message is missing" in result.anomalies[0].what


def test_an_acknowledged_turn_without_its_reply_is_lost() -> None:
    ops = [create(0), turn(1, "a one", "ok", 1, 2)]
    result = check_history(ops, {S: [{"role": "user", "content": "a one"}]}, {S})
    assert kinds(result) == [("lost", 1)]
    assert "reply 'a one' is missing" in result.anomalies[0].what


def test_replies_compare_whitespace_aside() -> None:
    ops = [create(0), turn(1, "a one", "ok", 1, 2)]
    history = [{"role": "user", "content": "a one"}, {"role": "assistant", "content": "aone"}]
    assert check_history(ops, {S: history}, {S}).passed


def test_a_message_stored_twice_is_duplicated() -> None:
    ops = [create(0), turn(1, "a one", "ok", 1, 2)]
    result = check_history(ops, {S: stored("a one", "a one")}, {S})
    assert kinds(result) == [("duplicated", 1)]


def test_turns_stored_against_their_acknowledged_order_are_out_of_order() -> None:
    ops = [create(0), turn(1, "a one", "ok", 1, 2), turn(2, "b two", "ok", 3, 4)]
    result = check_history(ops, {S: stored("b two", "a one")}, {S})
    assert kinds(result) == [("out_of_order", 2)]
    assert result.anomalies[0].other == 1


def test_overlapping_turns_may_be_stored_in_either_order() -> None:
    # The second was sent before the first was acknowledged: no order between them.
    ops = [create(0), turn(1, "a one", "ok", 1, 3), turn(2, "b two", "ok", 2, 4)]
    assert check_history(ops, {S: stored("b two", "a one")}, {S}).passed


def test_a_message_nobody_sent_is_a_phantom() -> None:
    ops = [create(0), turn(1, "a one", "ok", 1, 2)]
    result = check_history(ops, {S: stored("a one", "never sent")}, {S})
    assert kinds(result) == [("phantom", None)]


def test_unknown_operations_are_reported_not_failed() -> None:
    ops = [
        create(0),
        turn(1, "a one", "unknown", 1, 2),
        turn(2, "b two", "unknown", 3, 4),
        create(3, "unknown", "session_1700000000000"),
        turn(4, "c three", "fail", 5, 6),
    ]
    result = check_history(ops, {S: stored("a one", "c three")}, {S})
    assert result.passed
    assert result.unknown == {1: "happened", 2: "did not happen", 3: "cannot tell"}
    assert result.refused_but_stored == [4]


def test_the_schedule_is_replayed_from_its_seed() -> None:
    names = ["kill", "restart", "pause", "cut@ide", "latency@runtime", "down@ide"]
    first = generate_schedule(42, 20, names)
    assert generate_schedule(42, 20, names) == first
    assert generate_schedule(43, 20, names) != first
    assert len(first.faults) == 20
    # In order, never overlapping: each fault is healed before the next begins.
    for before, after in zip(first.faults, first.faults[1:], strict=False):
        assert after.at >= before.at + before.hold
    assert first.render().splitlines()[0] == "nemesis schedule, seed 42: 20 faults"


def test_a_plan_gives_its_schedule_by_name() -> None:
    schedule = schedule_from(
        [{"at": 2, "fault": "cut@ide"}, {"at": 1, "fault": "kill", "hold": 0.5}]
    )
    assert [(f.at, f.name, f.hold) for f in schedule.faults] == [
        (1.0, "kill", 0.5),
        (2.0, "cut@ide", 0.0),
    ]


@pytest.mark.parametrize("name", ["cut", "kill@ide", "melt", "latency@moon"])
def test_unknown_fault_names_are_refused_with_the_known_ones(name: str) -> None:
    with pytest.raises(ScheduleError, match="known: kill, restart"):
        parse_name(name)


def test_the_timeline_escapes_what_it_draws() -> None:
    op = turn(0, "<script>", "ok", 0.1, 0.5).as_dict()
    fault = {"name": "kill", "began": 0.2, "ended": 0.4, "error": "<b>"}
    svg = timeline_svg([op], [fault], {0})
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "&lt;b&gt;" in svg


def test_a_failed_durability_check_is_drawn_as_a_timeline_in_the_html_report() -> None:
    from conformance.reports.html import render_html
    from tests.test_html_report import check, report_of, requirement

    op = {**turn(0, "lost <one>", "ok", 0.1, 0.5).as_dict(), "anomaly": True}
    fault = {"name": "restart", "began": 0.6, "ended": 1.4, "error": ""}
    timeline = {
        "at": 0.0,
        "kind": "timeline",
        "text": json.dumps({"operations": [op], "faults": [fault]}),
    }
    failed = {
        **check("d", "failed"),
        "transcript": [timeline, {"at": 1.0, "kind": "note", "text": "n"}],
    }
    html = render_html(
        report_of(
            [requirement("X-DUR-1", "failed", "1 lost", profile="durability", checks=[failed])],
            ("core", "durability"),
        )
    )
    assert '<figure class="timeline"><svg' in html
    assert "lost &lt;one&gt;" in html
    # The timeline is drawn, not listed as a transcript row.
    assert "kind-timeline" not in html
