"""A durability run's result as files: JSON (everything), JUnit XML (one test case, the anomalies
as its failure) and a self-contained HTML page with the timeline as an SVG."""

import json
from html import escape
from xml.etree import ElementTree as ET

from simulators.durability.run import DurabilityResult


def render_json(result: DurabilityResult) -> str:
    return json.dumps(result.as_dict(), indent=2, ensure_ascii=False)


def render_junit(result: DurabilityResult) -> str:
    suites = ET.Element("testsuites", name="sessionlab", time=f"{result.duration:.3f}")
    failed = not result.passed
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="sessionlab.durability",
        tests="1",
        failures=str(int(failed)),
        errors="0",
        skipped="0",
    )
    case = ET.SubElement(
        suite,
        "testcase",
        classname="sessionlab.durability.MUST",
        name="X-DUR-1 nothing acknowledged is lost under the fault schedule",
        time=f"{result.duration:.3f}",
    )
    if failed:
        failure = ET.SubElement(case, "failure", message=result.checked.summary())
        failure.text = result.render()
    out = ET.SubElement(case, "system-out")
    out.text = result.schedule.render() + "\n" + result.render()
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d232a; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }
.passed { color: #1e7d45; } .failed { color: #b3261e; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: left; }
pre { background: #f5f6f8; padding: 8px; white-space: pre-wrap; font-size: 12px; }
"""


def render_html(result: DurabilityResult) -> str:
    data = result.as_dict()
    verdict = "passed" if result.passed else "failed"
    rows = "".join(
        f"<tr><td>{escape(kind)}</td>"
        + "".join(f"<td>{count}</td>" for count in row.values())
        + "</tr>"
        for kind, row in result.op_counts().items()
    )
    anomalies = "".join(
        f"<li><b>{escape(entry['kind'])}</b>: {escape(entry['what'])}"
        + (
            f"<br>{escape(entry['op'])}<br>faults around it: "
            f"{escape(', '.join(entry['faults_around']) or 'none')}"
            f"<pre>{escape(chr(10).join(entry['transcript']))}</pre>"
            if "op" in entry
            else ""
        )
        + "</li>"
        for entry in data["anomalies"]
    )
    unknown = ", ".join(f"{n} {verdict}" for verdict, n in data["unknown"].items()) or "none"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"
        f"<title>sessionlab durability: {verdict}</title><style>{STYLE}</style></head><body>"
        f"<h1>Durability (X-DUR-1): <span class='{verdict}'>{verdict}</span></h1>"
        f"<p>{escape(result.checked.summary())}; {data['ides']} IDEs, "
        f"{len(data['faults'])} faults, {data['duration']:.1f} s. {escape(data['replay'])}</p>"
        f"<h2>Timeline</h2>{result.svg()}"
        "<h2>Operations</h2><table><tr><th>kind</th><th>ok</th><th>fail</th><th>unknown</th>"
        f"</tr>{rows}</table>"
        f"<p>Unknown operations: {escape(unknown)}; refused turns stored all the same: "
        f"{data['refused_but_stored']}.</p>"
        f"<h2>Anomalies</h2><ul>{anomalies or '<li>none</li>'}</ul>"
        f"<h2>Schedule</h2><pre>{escape(result.schedule.render())}</pre>"
        "</body></html>"
    )
