"""The HTML report of `sessionlab verify --html`: its structure read back with the stdlib parser,
the page of a real failing run of the `sessionlab` executable, and the page rendered by a real
headless Chromium (screenshot and DOM)."""

import itertools
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conformance.reports.html import exit_code, render_html
from conformance.verdicts import STATUSES, CheckResult, conforms, judge_all, summary
from contract.requirements import CLIENT_PROFILE, catalogue
from tests.fixtures.stack import deadline

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = "<script>alert(1)</script>"
UNICODE = "naïve café — 日本語 ✓"
WINDOW = (1280, 2000)
# The page's own colours, from the stylesheet: the verdict banner's background and edge.
FAIL_BANNER = (bytes.fromhex("fde6e7"), bytes.fromhex("c92a36"))
PASS_BANNER = (bytes.fromhex("e3f3e8"), bytes.fromhex("2f8f4e"))


# Reports built here, in the shape the plugin writes.


def check(
    nodeid: str, outcome: str, message: str = "", transcript: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    made: dict[str, Any] = {
        "nodeid": nodeid,
        "outcome": outcome,
        "message": message,
        "duration": 0.0125,
        "transcript": transcript or [],
    }
    if outcome == "failed":
        # As the plugin writes a failure: what was awaited, what came, how to see it again.
        made |= {
            "expected": f"expected of {nodeid}",
            "received": f"received of {nodeid}",
            "reproduce": f"curl -sS -i http://127.0.0.1:8000/{nodeid}\nsessionlab replay r.json X",
        }
    return made


def requirement(
    id: str,
    status: str,
    message: str,
    *,
    level: str = "MUST",
    profile: str = "core",
    checks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "level": level,
        "profile": profile,
        "title": f"title of {id}",
        "status": status,
        "message": message,
        "checks": checks or [],
    }


def report_of(
    requirements: list[dict[str, Any]], profiles: tuple[str, ...] = ("core",)
) -> dict[str, Any]:
    counts = dict.fromkeys(STATUSES, 0)
    for entry in requirements:
        counts[entry["status"]] += 1
    return {
        "sessionlab": "0.1.0",
        "target": {
            "name": "test-target",
            "gateway_url": "http://127.0.0.1:8000",
            "runtime_url": "http://127.0.0.1:8001",
            "claimed_profiles": list(profiles),
        },
        "profiles": list(profiles),
        "started_at": 1_700_000_000.0,
        "duration": 4.25,
        "conforms": not counts["failed"] and not counts["error"] and counts["passed"] > 0,
        "summary": counts,
        "requirements": requirements,
    }


def conforming_report() -> dict[str, Any]:
    return report_of(
        [
            requirement("R-HEALTH-1", "passed", "1 check(s) passed", checks=[check("h", "passed")]),
            requirement(
                "R-LIST-1",
                "passed",
                "2 check(s) passed",
                checks=[check("l1", "passed"), check("l2", "passed")],
            ),
            requirement("R-CREATE-2", "passed", "1 check(s) passed", level="SHOULD"),
            requirement(
                "X-DEL-1", "skipped", "profile 'lifecycle' is not selected", profile="lifecycle"
            ),
        ]
    )


FAILED_TRANSCRIPT = [
    {"at": 0.0012, "kind": "http-request", "text": "POST /sessions\nX-Internal-Auth: <redacted>"},
    {"at": 0.0153, "kind": "http-response", "text": f'500 {{"error": "{HOSTILE} {UNICODE}"}}'},
    {"at": 0.02, "kind": "note", "text": "expected 200 or 201"},
]
# One check's exchange with both parties: the runtime's stream, then a socket on the gateway.
MIXED_TRANSCRIPT = [
    {"at": 0.001, "kind": "http-request", "text": "POST http://127.0.0.1:8001/sessions"},
    {"at": 0.002, "kind": "http-response", "text": '200 application/json {"session_id": "s_1"}'},
    {
        "at": 0.003,
        "kind": "http-request",
        "text": "POST http://127.0.0.1:8001/agent/message/stream {'x-internal-auth': '<redacted>'}"
        ' {"session_id": "s_1"}',
    },
    {
        "at": 0.004,
        "kind": "http-response",
        "text": "200 text/event-stream; charset=utf-8 event: message\ndata: {}\n\n"
        "event: done\ndata: {}\n\n",
    },
    {"at": 0.005, "kind": "note", "text": "a note is no exchange"},
    {"at": 0.006, "kind": "ws-open", "text": "ws://127.0.0.1:8000/ws/s_1"},
    {"at": 0.007, "kind": "ws-send", "text": '{"type": "user_message", "content": "hi"}'},
    {"at": 0.008, "kind": "ws-recv", "text": '{"type": "error", "content": "no"}'},
    {"at": 0.009, "kind": "ws-close", "text": "close 1011 'bad frame'"},
]


def failing_report() -> dict[str, Any]:
    """Every status, a MUST failure with a hostile transcript, skips for two different reasons."""
    return report_of(
        [
            requirement("R-HEALTH-1", "passed", "1 check(s) passed", checks=[check("h", "passed")]),
            requirement(
                "R-CREATE-1",
                "failed",
                "POST /sessions answered 500",
                checks=[
                    check("create[empty]", "passed"),
                    check(
                        "create[none]", "failed", "POST /sessions answered 500", FAILED_TRANSCRIPT
                    ),
                ],
            ),
            requirement(
                "R-CREATE-2",
                "warning",
                "session_id 'abc' does not match",
                level="SHOULD",
                checks=[check("shape", "failed", "session_id 'abc' does not match")],
            ),
            requirement("G-LOG-1", "error", "no check covers this requirement", level="SHOULD"),
            requirement("W-BAD-1", "error", "TargetError: the target did not start"),
            requirement("R-LIST-1", "passed", "1 check(s) passed", checks=[check("l", "passed")]),
            requirement(
                "R-HIST-1",
                "skipped",
                "no runtime URL given (--runtime-url or the target file)",
                checks=[check("hist", "skipped", "no runtime URL given")],
            ),
            requirement("W-TURN-1", "skipped", "not selected by --only R-"),
            requirement(
                "W-TOOL-1", "skipped", "profile 'scripted' is not selected", profile="scripted"
            ),
            requirement(
                "X-DEL-1", "skipped", "profile 'lifecycle' is not selected", profile="lifecycle"
            ),
        ]
    )


# The rendered page read back into a tree.

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: "Element | None" = None
    children: list["Element | str"] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self) -> Iterator["Element"]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.walk()

    def find_all(self, tag: str, **attrs: str) -> list["Element"]:
        return [
            e
            for e in self.walk()
            if e.tag == tag and all(e.attrs.get(_attribute(k)) == v for k, v in attrs.items())
        ]

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def ancestors(self) -> Iterator["Element"]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


def _attribute(keyword: str) -> str:
    """`class_` is `class`, `http_equiv` is `http-equiv`."""
    return keyword.rstrip("_").replace("_", "-")


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Element(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        # An end tag with no open element is ignored, as a browser would.
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse(page: str) -> Element:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    return builder.root


def rows(root: Element) -> list[Element]:
    return [e for e in root.find_all("tr") if "req" in e.classes()]


def row(root: Element, requirement_id: str) -> Element:
    (found,) = [r for r in rows(root) if r.attrs["id"] == f"req-{requirement_id}"]
    return found


def verdict_text(root: Element) -> str:
    (banner,) = [e for e in root.walk() if "verdict" in e.classes()]
    return " ".join(" ".join(p.text().split()) for p in banner.find_all("p"))


# The page's structure


def test_a_conforming_report_says_conforms_with_exit_code_0() -> None:
    root = parse(render_html(conforming_report()))
    assert verdict_text(root).startswith("CONFORMS exit code 0:")
    assert "DOES NOT CONFORM" not in root.text()
    (banner,) = [e for e in root.walk() if "verdict" in e.classes()]
    assert "verdict-0" in banner.classes()
    assert not [e for e in root.walk() if "attention" in e.classes()]


def test_a_must_failure_says_does_not_conform_with_exit_code_1() -> None:
    root = parse(render_html(failing_report()))
    text = verdict_text(root)
    assert text.startswith("DOES NOT CONFORM exit code 1:")
    assert (
        "1 MUST requirement(s) of the checked profiles failed, 2 requirement(s) could not be judged"
        in text
    )
    (head,) = root.find_all("head")
    (title,) = head.find_all("title")
    assert title.text().startswith("DOES NOT CONFORM")


def test_harness_errors_without_a_failure_mean_exit_code_3() -> None:
    report = report_of(
        [
            requirement("R-HEALTH-1", "passed", "1 check(s) passed"),
            requirement("G-LOG-1", "error", "no check covers this requirement"),
        ]
    )
    root = parse(render_html(report))
    assert verdict_text(root).startswith("DOES NOT CONFORM exit code 3: the run is incomplete")
    (banner,) = [e for e in root.walk() if "verdict" in e.classes()]
    assert "verdict-3" in banner.classes()


def test_a_run_where_nothing_passed_does_not_conform() -> None:
    report = report_of([requirement("R-HEALTH-1", "skipped", "no runtime URL given")])
    assert exit_code(report) == (1, "no check passed")


def known_failure_report(*, also_new: bool) -> dict[str, Any]:
    """A MUST failure the baseline lists as known, and optionally one it does not."""
    known = requirement("G-LOG-1", "failed", "no log line", checks=[check("g", "failed", "no")])
    known["known_failure"] = True
    listed = [requirement("R-HEALTH-1", "passed", "1 check(s) passed"), known]
    if also_new:
        listed.append(requirement("W-BAD-1", "failed", "no error frame"))
    report = report_of(listed)
    report["conforms"] = not also_new
    return report


def test_a_known_failure_is_shown_as_known_and_the_run_still_conforms() -> None:
    root = parse(render_html(known_failure_report(also_new=False)))
    assert verdict_text(root) == (
        "CONFORMS exit code 0: no MUST requirement of the checked profiles failed, "
        "apart from 1 known failure(s) listed in the baseline, and checks passed"
    )
    known = row(root, "G-LOG-1")
    assert known.attrs["data-status"] == "failed"
    assert "data-known" in known.attrs
    assert "✗ failed (known)" in " ".join(known.text().split())
    (counts,) = root.find_all("ul", class_="summary")
    assert "✗ 1 failed (1 known)" in {" ".join(li.text().split()) for li in counts.find_all("li")}


def test_a_new_failure_comes_before_a_known_one() -> None:
    report = known_failure_report(also_new=True)
    root = parse(render_html(report))
    assert exit_code(report) == (
        1,
        "1 MUST requirement(s) of the checked profiles failed "
        "(besides 1 known failure(s) listed in the baseline)",
    )
    order = [r.attrs["id"] for r in rows(root)]
    assert order.index("req-W-BAD-1") < order.index("req-G-LOG-1")
    (attention,) = [e for e in root.walk() if "attention" in e.classes()]
    lines = [" ".join(li.text().split()) for li in attention.find_all("li")]
    assert lines == ["✗ failed 1: W-BAD-1", "✗ failed (known) 1: G-LOG-1"]


def test_the_header_names_the_target_profiles_and_counts() -> None:
    root = parse(render_html(failing_report()))
    (facts,) = root.find_all("dl", class_="facts")
    pairs = dict(
        zip(
            (" ".join(e.text().split()) for e in facts.find_all("dt")),
            (" ".join(e.text().split()) for e in facts.find_all("dd")),
            strict=True,
        )
    )
    assert pairs["Target"] == "test-target"
    assert pairs["Gateway"] == "http://127.0.0.1:8000"
    assert pairs["Profiles checked"] == "core"
    assert pairs["Started"] == "2023-11-14 22:13:20 UTC"
    (counts,) = root.find_all("ul", class_="summary")
    shown = {" ".join(li.text().split()) for li in counts.find_all("li")}
    assert shown == {
        "✗ 1 failed",
        "⚠ 2 errors",
        "! 1 warning",
        "⊘ 0 blocked",
        "◐ 0 partial",
        "✓ 2 passed",
        "○ 4 skipped",
    }


def test_every_requirement_is_one_row_counted_by_status() -> None:
    report = failing_report()
    root = parse(render_html(report))
    counted = Counter(r.attrs["data-status"] for r in rows(root))
    assert counted == {"passed": 2, "failed": 1, "warning": 1, "error": 2, "skipped": 4}
    assert sorted(r.attrs["id"] for r in rows(root)) == sorted(
        f"req-{entry['id']}" for entry in report["requirements"]
    )


def test_each_row_shows_id_level_status_word_title_and_message() -> None:
    root = parse(render_html(failing_report()))
    failed = row(root, "W-BAD-1")
    header, level, status, body = [c for c in failed.children if isinstance(c, Element)]
    assert (header.tag, header.attrs["scope"], header.text()) == ("th", "row", "W-BAD-1")
    assert level.text() == "MUST"
    # The status is a word, not only a colour.
    assert status.text().split() == ["⚠", "error"]
    assert "title of W-BAD-1" in body.text()
    assert "TargetError: the target did not start" in body.text()


def test_must_failures_come_first_then_by_level_and_status() -> None:
    root = parse(render_html(failing_report()))
    failures, core = [t for t in root.find_all("table") if "requirements" in t.classes()][:2]
    assert "failures" in failures.classes()
    # Failures of every level lead, open: failed, then errors, then warnings.
    assert [r.attrs["id"].removeprefix("req-") for r in rows(failures)] == [
        "R-CREATE-1",  # MUST failed
        "W-BAD-1",  # MUST error
        "G-LOG-1",  # SHOULD error
        "R-CREATE-2",  # SHOULD warning
    ]
    assert [r.attrs["id"].removeprefix("req-") for r in rows(core)] == [
        "R-HEALTH-1",
        "R-LIST-1",  # MUST passed
        "R-HIST-1",  # MUST skipped
    ]
    # The profile's table still holds every requirement of it, a failure as a pointer up.
    moved = [e for e in core.find_all("tr") if "moved" in e.classes()]
    assert [m.find_all("th")[0].text() for m in moved] == [
        "R-CREATE-1",
        "W-BAD-1",
        "G-LOG-1",
        "R-CREATE-2",
    ]
    assert {a.attrs["href"] for m in moved for a in m.find_all("a")} == {
        "#req-R-CREATE-1",
        "#req-W-BAD-1",
        "#req-G-LOG-1",
        "#req-R-CREATE-2",
    }
    groups = [th.text() for th in core.find_all("th", scope="rowgroup")]
    assert groups == ["MUST (5)", "SHOULD (2)"]


def test_failing_rows_come_open_before_any_passing_row() -> None:
    root = parse(render_html(failing_report()))
    statuses = [r.attrs["data-status"] for r in rows(root)]
    leading = [s for s in statuses if s in ("failed", "error", "warning")]
    assert statuses[: len(leading)] == leading
    assert statuses.index("passed") > len(leading) - 1
    for entry in rows(root)[: len(leading)]:
        (details,) = [d for d in entry.find_all("details") if "checks" in d.classes()] or [None]
        assert details is None or "open" in details.attrs
    heading = [" ".join(h.text().split()) for h in root.find_all("h2")]
    assert heading.index(next(h for h in heading if h.startswith("Failures"))) < heading.index(
        "Profile core — 1 failed, 2 errors, 1 warning, 2 passed, 1 skipped"
    )


def test_needs_attention_links_to_each_row_that_went_wrong() -> None:
    root = parse(render_html(failing_report()))
    (attention,) = [e for e in root.walk() if "attention" in e.classes()]
    targets = [a.attrs["href"] for a in attention.find_all("a")]
    assert targets == ["#req-R-CREATE-1", "#req-W-BAD-1", "#req-G-LOG-1", "#req-R-CREATE-2"]
    ids = {r.attrs["id"] for r in rows(root)}
    assert {t.removeprefix("#") for t in targets} <= ids


def test_a_failed_row_is_open_on_its_checks_failing_first_with_the_transcript() -> None:
    root = parse(render_html(failing_report()))
    failed = row(root, "R-CREATE-1")
    (details,) = failed.find_all("details")
    assert "open" in details.attrs
    (summary_,) = details.find_all("summary")
    assert summary_.text() == "2 checks: 1 failed, 1 passed; wire transcript"
    outcomes = [li.attrs["data-outcome"] for li in details.find_all("li")]
    assert outcomes == ["failed", "passed"]
    (transcript,) = details.find_all("table")
    entries = transcript.find_all("tr", class_="entry kind-http-response")
    assert len(transcript.find_all("tr")) == 1 + len(FAILED_TRANSCRIPT)
    at, kind, text = [c for c in entries[0].children if isinstance(c, Element)]
    assert (at.text(), kind.text()) == ("+0.015 s", "http-response")
    assert text.find_all("pre")
    assert "X-Internal-Auth: <redacted>" in transcript.text()


def test_a_failing_check_shows_expected_received_and_its_reproduce_lines() -> None:
    root = parse(render_html(failing_report()))
    (failing,) = [li for li in row(root, "R-CREATE-1").find_all("li", data_outcome="failed")]
    (parts,) = failing.find_all("dl")
    names = [dt.text() for dt in parts.find_all("dt")]
    values = [" ".join(dd.text().split()) for dd in parts.find_all("dd")]
    assert dict(zip(names, values, strict=True)) == {
        "expected": "expected of create[none]",
        "received": "received of create[none]",
        "reproduce": "curl -sS -i http://127.0.0.1:8000/create[none] sessionlab replay r.json X",
    }
    (reproduce,) = parts.find_all("pre")
    assert reproduce.text().splitlines()[1] == "sessionlab replay r.json X"


def arrows(svg: Element) -> list[Element]:
    return [g for g in svg.find_all("g") if "arrow" in g.classes()]


def test_every_failing_check_has_a_sequence_diagram_with_one_arrow_per_exchange() -> None:
    report = failing_report()
    report["requirements"][1]["checks"].append(check("mixed", "failed", "no", MIXED_TRANSCRIPT))
    root = parse(render_html(report))
    failing = [li for li in root.find_all("li", data_outcome="failed")]
    for item in failing:
        wire = [
            e
            for e in next(
                c
                for r in report["requirements"]
                for c in r["checks"]
                if c["nodeid"] == item.find_all("code")[0].text()
            )["transcript"]
            if e["kind"] != "note"
        ]
        svgs = item.find_all("svg")
        if not wire:
            assert not svgs
            continue
        (svg,) = svgs
        assert len(arrows(svg)) == len(wire)
        assert [g.attrs["data-kind"] for g in arrows(svg)] == [e["kind"] for e in wire]
    (mixed,) = [li for li in failing if li.find_all("code")[0].text() == "mixed"]
    (svg,) = mixed.find_all("svg")
    lanes = [t.text() for t in svg.find_all("text") if "lane-name" in t.classes()]
    assert lanes == ["IDE", "gateway", "runtime"]
    # A request to the runtime URL and its answer are the runtime's; the socket the gateway's.
    assert [(g.attrs["data-lane"], "to-target" in g.classes()) for g in arrows(svg)] == [
        ("runtime", True),
        ("runtime", False),
        ("runtime", True),
        ("runtime", False),
        ("gateway", True),
        ("gateway", True),
        ("gateway", False),
        ("gateway", False),
    ]
    labels = [
        " ".join(t.text() for t in g.find_all("text") if "label" in t.classes())
        for g in arrows(svg)
    ]
    assert labels[2] == 'POST /agent/message/stream {"session_id": "s_1"}'
    assert labels[3] == "200 event stream, 2 event(s): message, done"
    assert labels[4] == "open /ws/s_1"
    # The whole entry is the arrow's tooltip, markup escaped like everywhere else.
    hostile = next(li for li in failing if li.find_all("code")[0].text() == "create[none]")
    (hostile_svg,) = hostile.find_all("svg")
    assert any(HOSTILE in t.text() for t in hostile_svg.find_all("title"))
    assert not root.find_all("script")


def test_shared_causes_lead_the_page_under_the_verdict() -> None:
    report = failing_report()
    report["causes"] = [
        {
            "cause": "no connection to http://127.0.0.1:8001 (All connection attempts failed)",
            "requirements": ["R-CREATE-1", "R-CREATE-2", "W-BAD-1"],
        }
    ]
    root = parse(render_html(report))
    (causes,) = [e for e in root.walk() if "causes" in e.classes()]
    assert "3 requirements fail for one cause: no connection to http://127.0.0.1:8001" in " ".join(
        causes.text().split()
    )
    assert [a.attrs["href"] for a in causes.find_all("a")] == [
        "#req-R-CREATE-1",
        "#req-R-CREATE-2",
        "#req-W-BAD-1",
    ]
    order = [e for e in root.walk() if e.classes() & {"verdict", "causes", "facts", "failures"}]
    assert [sorted(e.classes() & {"verdict", "causes", "facts", "failures"})[0] for e in order][
        :4
    ] == ["verdict", "causes", "facts", "failures"]


def test_markup_in_a_transcript_is_text_and_never_an_element() -> None:
    page = render_html(failing_report())
    root = parse(page)
    assert not root.find_all("script")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    (pre,) = [p for p in root.find_all("pre") if HOSTILE in p.text()]
    assert UNICODE in pre.text()
    (tooltip,) = [t for t in root.find_all("title") if HOSTILE in t.text()]
    assert UNICODE in tooltip.text()


def test_attribute_values_and_every_field_are_escaped() -> None:
    hostile = '"><img src=x onerror=alert(1)>'
    report = report_of(
        [
            requirement(
                hostile,
                "failed",
                hostile,
                level=hostile,
                checks=[
                    check(hostile, "failed", hostile, [{"at": 0.1, "kind": hostile, "text": "x"}])
                ],
            ),
            requirement("R-HEALTH-1", "passed", "1 check(s) passed"),
        ]
    )
    report["target"]["name"] = hostile
    report["profiles"].append(hostile)
    root = parse(render_html(report))
    assert not root.find_all("img")
    assert not [e for e in root.walk() if any(name.startswith("on") for name in e.attrs)]
    assert hostile in root.text()


def test_unprintable_characters_become_visible_escapes() -> None:
    report = failing_report()
    report["requirements"][1]["checks"][1]["transcript"] = [
        {"at": 0.0, "kind": "http-response", "text": "nul\x00 bell\x07 lone\ud800 tab\tok"}
    ]
    page = render_html(report)
    # A lone surrogate cannot be written as UTF-8: the page must still be.
    page.encode("utf-8")
    assert "nul\\u0000 bell\\u0007 lone\\ud800 tab\tok" in parse(page).text()


def test_skipped_rows_show_their_reason_and_no_checks() -> None:
    root = parse(render_html(failing_report()))
    skipped = row(root, "R-HIST-1")
    assert "no runtime URL given (--runtime-url or the target file)" in skipped.text()
    assert not skipped.find_all("details")


def test_passing_rows_fold_their_checks_without_transcripts() -> None:
    root = parse(render_html(failing_report()))
    passed = row(root, "R-HEALTH-1")
    (details,) = passed.find_all("details")
    assert details.find_all("summary")[0].text() == "1 check(s) passed"
    assert not details.find_all("table")


def test_requirements_not_checked_are_folded_with_their_reason_not_dropped() -> None:
    root = parse(render_html(failing_report()))
    (folded,) = [d for d in root.find_all("details") if "not-checked" in d.classes()]
    inside = sorted(r.attrs["id"].removeprefix("req-") for r in rows(folded))
    assert inside == ["W-TOOL-1", "W-TURN-1", "X-DEL-1"]
    assert "profile 'lifecycle' is not selected" in row(folded, "X-DEL-1").text()
    assert "not selected by --only R-" in row(folded, "W-TURN-1").text()
    headings = [" ".join(h.text().split()) for h in root.find_all("h2")]
    assert "Profile core — 1 failed, 2 errors, 1 warning, 2 passed, 1 skipped" in headings


def test_the_page_is_self_contained_and_fetches_nothing() -> None:
    root = parse(render_html(failing_report()))
    for tag in ("script", "link", "img", "iframe", "object", "embed"):
        assert not root.find_all(tag), tag
    for element in root.walk():
        assert "src" not in element.attrs
        assert element.attrs.get("href", "#").startswith("#")
    (policy,) = root.find_all("meta", http_equiv="Content-Security-Policy")
    assert "default-src 'none'" in policy.attrs["content"]
    assert root.find_all("style")


def test_the_page_is_built_for_assistive_tools_and_print() -> None:
    page = render_html(failing_report())
    root = parse(page)
    (document,) = root.find_all("html")
    assert document.attrs["lang"] == "en"
    for table in root.find_all("table"):
        assert table.find_all("caption"), "every table says what it holds"
        assert table.find_all("th", scope="col")
    assert "@media print" in page
    assert "details-content" in page


def test_a_status_this_page_does_not_know_is_still_shown_and_counted() -> None:
    report = conforming_report()
    report["requirements"].append(requirement("G-LOG-1", "known", "listed as a known failure"))
    report["summary"]["known"] = 1
    root = parse(render_html(report))
    assert row(root, "G-LOG-1").attrs["data-status"] == "known"
    assert "listed as a known failure" in row(root, "G-LOG-1").text()
    (counts,) = root.find_all("ul", class_="summary")
    assert "? 1 known" in {" ".join(li.text().split()) for li in counts.find_all("li")}


def test_a_report_without_a_target_still_renders() -> None:
    report = failing_report()
    report["target"] = None
    root = parse(render_html(report))
    (facts,) = root.find_all("dl", class_="facts")
    assert "unknown (it did not start)" in facts.text()


def test_a_report_from_the_verdict_functions_renders_every_requirement() -> None:
    results = [
        CheckResult("a", ("R-HEALTH-1",), "passed"),
        CheckResult("b", ("R-CREATE-1",), "failed", "500", 0.1, FAILED_TRANSCRIPT),
        CheckResult("c", ("R-CREATE-2",), "failed", "bad id"),
    ]
    verdicts = judge_all(results, frozenset({"core"}))
    report = report_of([v.as_dict() for v in verdicts])
    assert report["summary"] == summary(verdicts)
    assert report["conforms"] is conforms(verdicts)
    root = parse(render_html(report))
    expected = {i for i, r in catalogue().items() if r.profile != CLIENT_PROFILE}
    assert {r.attrs["id"].removeprefix("req-") for r in rows(root)} == expected
    assert Counter(r.attrs["data-status"] for r in rows(root)) == Counter(
        {s: n for s, n in summary(verdicts).items() if n}
    )
    assert row(root, "R-CREATE-2").attrs["data-status"] == "warning"


# The page of a real failing run

SESSIONLAB = str(Path(sys.executable).parent / "sessionlab")
REPO = Path(__file__).resolve().parents[1]
FETCHING = re.compile(
    r"<(script|link|img|iframe|object|embed|image|use)\b[^>]*\b(src|href)\s*=\s*[\"']?\s*"
    r"(https?:|//)",
    re.IGNORECASE,
)


def test_the_page_of_a_failing_run_leads_with_its_failures_each_drawn_as_a_sequence(
    tmp_path: Path,
) -> None:
    """A broken runtime whose stream never says done, checked by the `sessionlab` executable:
    the failing rows lead, every failing check has its diagram, and the page fetches nothing."""
    report_path, page_path = tmp_path / "report.json", tmp_path / "report.html"
    result = subprocess.run(
        [
            SESSIONLAB,
            "verify",
            *("--target-factory", "tests.broken.core_breaks:stream_without_done"),
            *("--only", "R-STREAM", "--only", "R-LIST", "--only", "W-CONN-1"),
            *("--json", str(report_path), "--html", str(page_path)),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=deadline(300),
        check=False,
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    page = page_path.read_text()
    root = parse(page)

    statuses = [r.attrs["data-status"] for r in rows(root)]
    leading = len(statuses) - len(
        list(itertools.dropwhile(lambda s: s in ("failed", "error", "warning"), statuses))
    )
    assert statuses[:leading] == ["failed"]
    assert "passed" in statuses[leading:]
    assert not {"failed", "error", "warning"} & set(statuses[leading:])

    failing = [
        c
        for r in report["requirements"]
        for c in r["checks"]
        if c["outcome"] == "failed" and c.get("transcript")
    ]
    assert failing
    items = {li.find_all("code")[0].text(): li for li in root.find_all("li", data_outcome="failed")}
    for check_ in failing:
        wire = [e for e in check_["transcript"] if e["kind"] != "note"]
        (svg,) = items[check_["nodeid"]].find_all("svg")
        assert len(arrows(svg)) == len(wire), check_["nodeid"]
        lanes = {g.attrs["data-lane"] for g in arrows(svg)}
        # The stream check talks to the runtime only: its arrows are in the runtime's lane.
        assert lanes == {"runtime"}, check_["nodeid"]
        reproduce = " ".join(
            pre.text() for pre in items[check_["nodeid"]].find_all("pre", class_="reproduce")
        )
        assert f"sessionlab replay {report_path} R-STREAM-1" in reproduce

    assert not FETCHING.search(page)
    assert not root.find_all("script")
    assert not root.find_all("link")
    for element in root.walk():
        for name in ("src", "href", "xlink:href", "srcset", "action", "data"):
            value = element.attrs.get(name, "")
            assert not re.match(r"\s*(https?:|//)", value), (element.tag, name, value)


# The page in a real browser


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (scripts/chromium.sh installs it)"
        # CI installs it: there, a missing browser is a broken run, not a skip.
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


def run_chromium(binary: Path, scratch: Path, page: Path, *extra: str) -> str:
    """One headless run, bounded in time; its whole process group is gone when this returns."""
    profile = scratch / f"profile-{time.monotonic_ns()}"
    command = [
        str(binary),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        # A container's /dev/shm is often 64 MB, too little for a renderer: use /tmp instead.
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *extra,
        page.as_uri(),
    ]
    # A session of its own, so that renderer and helper processes can be ended with it.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=deadline(60))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish within {deadline(60)} s")
    finally:
        _end_group(process.pid)
    assert process.returncode == 0, err[-2000:]
    return out


def _end_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    stop = time.monotonic() + 5
    while _running_in_group(pgid):
        if time.monotonic() > stop:
            raise AssertionError(f"chromium processes of group {pgid} outlived the run")
        time.sleep(0.05)


def _running_in_group(pgid: int) -> list[int]:
    """Live members of a process group. Its helpers, orphaned when the browser exits, are reaped
    by init in its own time: a zombie has ended and is not counted."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and brackets: the fields start after its last ")".
        state, _, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state not in ("Z", "X"):
            alive.append(int(entry.name))
    return alive


def png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct RGB colours of an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    assert (depth, interlace) == (8, 0), (depth, interlace)
    step = {2: 3, 6: 4}[colour]  # RGB or RGBA
    compressed, at = bytearray(), 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        if data[at + 4 : at + 8] == b"IDAT":
            compressed += data[at + 8 : at + 8 + length]
        at += 12 + length
    raw = zlib.decompress(bytes(compressed))
    stride = width * step
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, step)
        colours.update(bytes(line[i : i + 3]) for i in range(0, stride, step))
        previous = line
    return width, height, colours


def _unfilter(kind: int, line: bytearray, above: bytearray, step: int) -> None:
    for i in range(len(line)):
        left = line[i - step] if i >= step else 0
        up, corner = above[i], (above[i - step] if i >= step else 0)
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            guess = left + up - corner
            near = min(
                (abs(guess - left), 0, left),
                (abs(guess - up), 1, up),
                (abs(guess - corner), 2, corner),
            )
            line[i] = (line[i] + near[2]) & 0xFF


def _paeth(left: int, up: int, corner: int) -> int:
    # Written as the PNG specification states it, apart from the reader's own version.
    guess = left + up - corner
    to_left, to_up, to_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
    if to_left <= to_up and to_left <= to_corner:
        return left
    if to_up <= to_corner:
        return up
    return corner


def encode_png(width: int, height: int, pixels: bytes) -> bytes:
    """An RGB PNG whose rows cycle through the five filter kinds."""
    stride, raw = width * 3, bytearray()
    above = bytes(stride)
    for y in range(height):
        line = pixels[y * stride : (y + 1) * stride]
        kind = y % 5
        raw.append(kind)
        for i, value in enumerate(line):
            left = line[i - 3] if i >= 3 else 0
            corner = above[i - 3] if i >= 3 else 0
            predicted = [0, left, above[i], (left + above[i]) // 2, _paeth(left, above[i], corner)]
            raw.append((value - predicted[kind]) & 0xFF)
        above = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def test_png_reader_undoes_every_filter_kind() -> None:
    width, height = 7, 10
    pixels = bytes(
        (x * 37 + y * 91 + (x * y) % 13 * 17) & 0xFF
        for y in range(height)
        for x in range(width * 3)
    )
    read_width, read_height, colours = png_pixels(encode_png(width, height, pixels))
    assert (read_width, read_height) == (width, height)
    assert colours == {pixels[i : i + 3] for i in range(0, len(pixels), 3)}


@pytest.mark.parametrize(
    ("make", "verdict", "banner"),
    [
        pytest.param(failing_report, "DOES NOT CONFORM", FAIL_BANNER, id="failing"),
        pytest.param(conforming_report, "CONFORMS", PASS_BANNER, id="conforming"),
    ],
)
def test_chromium_renders_the_report_with_its_verdict_and_every_requirement(
    chromium: Path,
    tmp_path: Path,
    make: Callable[[], dict[str, Any]],
    verdict: str,
    banner: tuple[bytes, bytes],
) -> None:
    report = make()
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shot = tmp_path / "report.png"

    run_chromium(chromium, tmp_path, page, f"--screenshot={shot}")
    data = shot.read_bytes()
    width, height, colours = png_pixels(data)
    assert (width, height) == WINDOW
    # Text, badges and the banner make thousands of colours; a blank or failed page has a few.
    assert len(data) > 20_000
    assert len(colours) > 200
    assert set(banner) <= colours, "the verdict banner is drawn in its colours"

    dom = run_chromium(chromium, tmp_path, page, "--dump-dom")
    root = parse(dom)
    assert verdict_text(root).startswith(verdict)
    for entry in report["requirements"]:
        assert entry["id"] in dom
    assert not root.find_all("script")
    if make is failing_report:
        assert any(HOSTILE in pre.text() for pre in root.find_all("pre"))
