"""`sessionlab load`: simulated IDEs against real targets, from worker processes, small and quick.

Runs are counted by operations where the tests compare exact numbers: 8 operations per IDE are
one pass of the cycle (simulators/load/flows.py), entered at four places by the IDE's number.
Speeds are never asserted, apart from a slow variant whose every request sleeps far longer than
the machine's noise.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.target_options import TargetOptions
from sessionlab.bench import recipe
from sessionlab.cli import main
from sessionlab.load_run import compare_options
from simulators.load.causes import cause_of
from simulators.load.loopback import RemoteTargetError, loopback_only
from simulators.load.plan import LoadPlan, PlanError
from simulators.load.run import round_order
from tests.fixtures.stack import ReferenceStack, deadline

CYCLE = 8
FAST_THINK = ["--think", "0.01-0.05"]


def _report(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text(encoding="utf-8"))


def _counts(target: dict) -> dict[str, int]:  # type: ignore[type-arg]
    return {flow["flow"]: flow["count"] for flow in target["flows"]}


def test_load_runs_every_flow_of_20_ides_against_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, page = tmp_path / "load.json", tmp_path / "load.html"
    code = main(
        ["load", "--ides", "20", "--operations", str(20 * CYCLE), "--ramp-up", "1", "--workers",
         "2", *FAST_THINK, "--json", str(report), "--html", str(page)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    result = _report(report)
    assert result["errors"] == 0
    (target,) = result["targets"]
    # A quarter of the IDEs go round the whole cycle; the others enter it after their first
    # create at the second create, the switch or the restore, and wrap round to another create.
    assert _counts(target) == {"create": 55, "chat": 65, "switch": 20, "restore": 20}
    assert all(flow["p99_ms"] > 0 for flow in target["flows"])
    assert result["plan"]["workers"] == 2
    assert "restore" in out
    assert "no errors" in out
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 3
    assert "<polyline" in html
    assert "<script" not in html


def test_a_run_with_errors_exits_1_with_errors_grouped_by_cause(tmp_path: Path) -> None:
    report = tmp_path / "load.json"
    code = main(
        ["load", "--target-factory", "tests.fixtures.load_variants:refusing_reference", "--ides",
         "4", "--operations", "8", "--ramp-up", "0", *FAST_THINK, "--json", str(report)]
    )  # fmt: skip
    assert code == 1
    (target,) = _report(report)["targets"]
    (group,) = target["errors_by_cause"]
    # Every IDE's every create fails the same way: one cause, one example of it.
    assert group["count"] == target["errors"] == _report(report)["errors"]
    assert group["cause"].startswith("create: the gateway failed")
    assert "503" in group["example"]
    assert group["trace"]


def test_compare_measures_the_reference_against_itself_in_alternating_rounds(
    tmp_path: Path,
) -> None:
    report = tmp_path / "load.json"
    code = main(
        ["load", "--compare", "reference", "--rounds", "2", "--ides", "4", "--operations",
         str(2 * 4 * CYCLE), "--ramp-up", "0", *FAST_THINK, "--json", str(report)]
    )  # fmt: skip
    assert code == 0
    result = _report(report)
    assert [t["label"] for t in result["targets"]] == ["reference (A)", "reference (B)"]
    for target in result["targets"]:
        # Each round does its share of the operations: a whole cycle per IDE, twice.
        assert _counts(target) == {"create": 22, "chat": 26, "switch": 8, "restore": 8}
    ratios = [row["throughput_ratio"] for row in result["comparison"]]
    assert all(ratio is not None and math.isfinite(ratio) for ratio in ratios)


def test_compare_shows_a_slow_variant_as_slower(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "load.json"
    code = main(
        ["load", "--compare", "tests.fixtures.load_variants:slow_reference", "--rounds", "1",
         "--ides", "4", "--operations", str(4 * CYCLE), "--ramp-up", "0", *FAST_THINK,
         "--json", str(report)]
    )  # fmt: skip
    assert code == 0
    rows = {row["flow"]: row for row in _report(report)["comparison"]}
    # A create is two requests, each 0.5 s later on the slow gateway.
    assert rows["create"]["p50_ratio"] > 1.5
    assert rows["switch"]["p50_ratio"] > 1.5
    assert "slow reference against reference" in capsys.readouterr().out


def test_load_refuses_a_target_off_this_machine_without_allow_remote(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 192.0.2.1 is TEST-NET-1: refused before anything is sent to it.
    code = main(["load", "--gateway-url", "http://192.0.2.1:8000", "--ides", "1"])
    assert code == 2
    assert "--allow-remote" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://192.0.2.1:8000", False),
    ],
    ids=["ipv4-loopback", "localhost", "ipv6-loopback", "remote"],
)
def test_loopback_only_accepts_loopback_addresses_alone(url: str, allowed: bool) -> None:
    if allowed:
        loopback_only(url)
    else:
        with pytest.raises(RemoteTargetError):
            loopback_only(url)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ides", "0"], "--ides 0"),
        (["--duration", "0"], "--duration 0"),
        (["--operations", "0"], "--operations 0"),
        (["--think", "2-1"], "--think 2-1"),
        (["--rounds", "0"], "--rounds 0"),
    ],
    ids=["no-ides", "no-duration", "no-operations", "think-backwards", "no-rounds"],
)
def test_load_refuses_an_unbounded_or_empty_plan(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["load", *argv]) == 2
    assert message in capsys.readouterr().err


def test_plan_shares_operations_among_ides_and_spreads_their_starts() -> None:
    plan = LoadPlan(ides=4, operations=10, ramp_up=2.0)
    assert [plan.operations_of(ide) for ide in range(4)] == [3, 3, 2, 2]
    assert [plan.start_delay(ide) for ide in range(4)] == [0.0, 0.5, 1.0, 1.5]
    with pytest.raises(PlanError):
        LoadPlan(ides=100_000)


def test_rounds_alternate_so_that_neither_target_always_goes_first() -> None:
    assert round_order(2, 4) == [0, 1, 1, 0, 0, 1, 1, 0]
    assert round_order(1, 4) == [0]


def test_compare_names_its_target_the_ways_verify_does() -> None:
    first = TargetOptions(client_key="k", turn_timeout=5.0)
    assert compare_options("reference", first) == TargetOptions(turn_timeout=5.0)
    assert compare_options("http://127.0.0.1:9000", first).gateway_url == "http://127.0.0.1:9000"
    assert compare_options("pkg.module:factory", first).target_factory == "pkg.module:factory"
    assert compare_options("my-target.yaml", first).target_file == "my-target.yaml"


def test_causes_take_out_what_differs_between_two_instances_of_one_error() -> None:
    one = cause_of("switch", "WebSocket ws://127.0.0.1:41234/ws/session_ab12 did not open: x")
    two = cause_of("switch", "WebSocket ws://127.0.0.1:41777/ws/session_ff00 did not open: x")
    assert one == two == "switch: WebSocket ws://127.0.0.1:PORT/ws/session_… did not open: x"


def test_load_reports_a_target_that_does_not_start_with_status_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing.yaml"
    target.write_text(
        "kind: process\nservices:\n  runtime: {command: [no-such-command-here]}\n"
        "  gateway: {command: [no-such-command-here]}\n",
        encoding="utf-8",
    )
    assert main(["load", "--target", str(target), "--ides", "1"]) == 3
    assert "did not start" in capsys.readouterr().err


def _locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", "simulators/load/locustfile.py", *args]


def test_locust_master_and_two_workers_drive_the_flows_on_loopback(
    reference_stack: ReferenceStack, tmp_path: Path
) -> None:
    from conformance.targets.ports import free_ports

    (port,) = free_ports(1)
    common = ["--master-port", str(port)]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    master = subprocess.Popen(
        _locust("--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                "--expect-workers", "2", "--headless", "-u", "4", "-r", "4", "-t", "6s",
                "--host", reference_stack.gateway_url, "--ide-think", "0.05-0.1",
                "--csv", str(tmp_path / "run"), "--only-summary"),
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    workers = [
        subprocess.Popen(
            _locust("--worker", "--master-host", "127.0.0.1", *common),
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        output, _ = master.communicate(timeout=deadline(90))
        for worker in workers:
            worker.wait(timeout=deadline(30))
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert master.returncode == 0, output
    stats = (tmp_path / "run_stats.csv").read_text(encoding="utf-8").splitlines()
    rows = {line.split(",")[1]: line.split(",") for line in stats[1:]}
    assert int(rows["create"][2]) > 0
    assert int(rows["chat"][2]) > 0
    assert rows["Aggregated"][3] == "0"  # failures


def test_bench_recipe_is_the_documented_plan_scaled(capsys: pytest.CaptureFixture[str]) -> None:
    full = recipe(1.0).plan
    assert (full.ides, full.ramp_up, full.duration) == (200, 10.0, 60.0)
    quick = recipe(0.05).plan
    assert (quick.ides, quick.ramp_up, quick.duration) == (10, 0.5, 3.0)
    assert main(["bench", "--scale", "0"]) == 2
    assert "--scale 0" in capsys.readouterr().err
