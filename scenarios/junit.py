"""JUnit XML for scenario runs: a test case per scenario, the failing step in the failure."""

from collections.abc import Iterable
from xml.etree import ElementTree as ET

from scenarios.results import ScenarioResult


def render_junit(results: Iterable[ScenarioResult]) -> str:
    listed = list(results)
    suite = ET.Element(
        "testsuite",
        name="sessionlab.scenarios",
        tests=str(len(listed)),
        failures=str(sum(r.status == "failed" for r in listed)),
        errors=str(sum(r.status == "error" for r in listed)),
        skipped=str(sum(r.status == "skipped" for r in listed)),
        time=f"{sum(r.duration for r in listed):.3f}",
    )
    for result in listed:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"scenarios.{result.source}",
            name=f"{result.label} {result.title}",
            time=f"{result.duration:.3f}",
        )
        properties = ET.SubElement(case, "properties")
        ET.SubElement(properties, "property", name="client", value=result.client)
        for note in result.notes:
            ET.SubElement(properties, "property", name="note", value=note)
        failed = result.failed_step
        if result.status == "failed" and failed is not None:
            node = ET.SubElement(
                case, "failure", message=f"step {failed.index + 1}: {failed.message}"
            )
            node.text = result.render()
        elif result.status == "error":
            ET.SubElement(case, "error", message=result.message).text = result.render()
        elif result.status == "skipped":
            ET.SubElement(case, "skipped", message=result.message)
        out = ET.SubElement(case, "system-out")
        out.text = result.render()
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
