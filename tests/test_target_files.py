"""Target description files: every example loads; every mistake names its file, line, key and
reason, all mistakes at once, before anything is started."""

from pathlib import Path

import pytest

from conformance.target_options import TargetOptionError, TargetOptions, make_target
from conformance.targets.description import (
    ContainerDescription,
    ProcessDescription,
    ReferenceDescription,
    TargetFileError,
    UrlDescription,
    fill,
    load_description,
    parse_description,
)
from conformance.targets.loader import build_target
from conformance.targets.process_target import ProcessTarget
from conformance.targets.url_target import UrlTarget
from tests.fixtures.thirdparty.harness import EXAMPLES, HERE

ENV = {"ACME_TEST_INTERNAL_KEY": "i-key", "ACME_TEST_CLIENT_KEY": "c-key"}


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(TargetFileError) as caught:
        parse_description(text, Path("t.yaml"), environ or {})
    return str(caught.value).splitlines()


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("reference.yaml", ReferenceDescription),
        ("reference-url.yaml", UrlDescription),
        ("reference-process.yaml", ProcessDescription),
        ("reference-container.yaml", ContainerDescription),
    ],
)
def test_every_example_file_loads_as_its_kind(name: str, model: type) -> None:
    description = load_description(EXAMPLES / name, {"SESSIONLAB_INTERNAL_KEY": "k"})
    assert isinstance(description, model)
    assert "core" in description.claimed_profiles()


def test_the_thirdparty_files_load_and_a_process_target_is_built_from_one() -> None:
    for path in sorted(HERE.glob("acme*.yaml")):
        assert load_description(path, ENV).kind == "process", path
    description = load_description(HERE / "acme.yaml", ENV)
    target = build_target(description, HERE)
    assert isinstance(target, ProcessTarget)
    assert target.name == "acme"
    assert target.description.faults.runtime_hop


def test_a_target_file_names_the_client_model_its_plans_run_with() -> None:
    assert parse_description("kind: reference\nclient: shipped\n", Path("t.yaml"), {}).client == (
        "shipped"
    )
    # Absent: `sessionlab run` takes its default, the designed model.
    assert parse_description("kind: reference\n", Path("t.yaml"), {}).client is None


def test_a_yaml_syntax_error_names_the_line_where_the_bracket_opened() -> None:
    assert problems("kind: url\ngateway_url: [unclosed\n") == [
        "t.yaml:2: YAML syntax: while parsing a flow sequence expected ',' or ']', "
        "but got '<stream end>'"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "t.yaml:1: the file is empty"),
        ("- a\n- b\n", "t.yaml:1: a target description is a mapping of keys"),
        ("name: x\n", "t.yaml:1 kind: field required (one of reference, url, process, container)"),
        ("name: x\nkind: cloud\n", "t.yaml:2 kind: unknown kind 'cloud'"),
        ("kind: url\n", "t.yaml:1 gateway_url: field required"),
        ("kind: url\ngateway_url: nope\n", "t.yaml:2 gateway_url: "),
        ("kind: url\ngateway_url: http://a\ncolour: red\n", "t.yaml:3 colour: unknown field"),
        ("kind: url\ngateway_url: http://a\nprofiles: [core, nope]\n", "t.yaml:3 profiles[1]: "),
        ("kind: url\ngateway_url: http://a\nturn_timeout: -1\n", "t.yaml:3 turn_timeout: "),
        ("kind: url\ngateway_url: ${GW}\n", "t.yaml:2 gateway_url: environment variable GW"),
        ("kind: url\ngateway_url: http://a\nname: a\nname: b\n", "t.yaml:4: duplicate key 'name'"),
        (
            "kind: url\ngateway_url: http://a\nfaults: {runtime_hop: true}\n",
            "t.yaml:3 faults.runtime_hop: a url target cannot have a fault proxy",
        ),
        (
            "kind: url\ngateway_url: http://a\nlogs: {runtime: captured}\n",
            "t.yaml:3 logs.runtime: a running target's output cannot be captured",
        ),
        ("kind: reference\nkeys: {internal: k}\n", "t.yaml:2 keys.internal: the reference picks"),
        (
            "kind: reference\nname: r\nclient: browser\n",
            "t.yaml:3 client: unknown client model 'browser'; expected one of designed, shipped",
        ),
        (
            "kind: reference\nclient: both\n",
            "t.yaml:2 client: unknown client model 'both'; expected one of designed, shipped",
        ),
    ],
)
def test_each_mistake_is_reported_with_file_line_key_and_reason(text: str, expected: str) -> None:
    found = problems(text)
    assert any(line.startswith(expected) for line in found), found


PROCESS = """\
kind: process
keys: {internal: k}
services:
  runtime:
    command: [run, "{runtime_port}", "{data_dir}"]
  gateway:
    command: [gw, "{runtime_url}", "{gateway_prot}", "{client_key}"]
    port: 70000
"""


def test_all_mistakes_of_a_file_are_reported_at_once_in_line_order() -> None:
    # Shapes and values first: a placeholder is only read in a file whose shape is right.
    assert problems(PROCESS) == [
        "t.yaml:8 services.gateway.port: input should be less than or equal to 65535"
    ]
    found = problems(PROCESS.replace("port: 70000", "port: 7000"))
    assert found[0].startswith(
        "t.yaml:7 services.gateway.command[2]: unknown placeholder {gateway_prot} (known: "
    )
    assert "{gateway_port}" in found[0]  # the known ones are listed
    assert found[1] == (
        "t.yaml:7 services.gateway.command[3]: {client_key} is used but keys.client is not set"
    )
    assert len(found) == 2


def test_a_process_service_without_a_command_is_named() -> None:
    text = "kind: process\nservices:\n  runtime: {cwd: .}\n  gateway: {command: [gw]}\n"
    assert problems(text) == ["t.yaml:3 services.runtime.command: field required"]


def test_runtime_hop_needs_the_gateway_to_take_the_runtime_url() -> None:
    text = (
        "kind: process\nservices:\n  runtime: {command: [rt]}\n  gateway: {command: [gw]}\n"
        "faults:\n  runtime_hop: true\n"
    )
    (found,) = problems(text)
    assert found.startswith("t.yaml:6 faults.runtime_hop: needs {runtime_url} in services.gateway")


def test_environment_references_take_defaults_and_dollar_dollar_is_a_dollar() -> None:
    text = "kind: url\ngateway_url: ${GW:-http://127.0.0.1:1}\nkeys: {client: a$$b}\n"
    description = parse_description(text, Path("t.yaml"), {})
    assert isinstance(description, UrlDescription)
    assert description.gateway_url == "http://127.0.0.1:1"
    assert description.keys.client == "a$b"


def test_placeholders_are_filled_and_double_braces_are_braces() -> None:
    assert fill("{gateway_url}/x {{not}} {other}", {"gateway_url": "http://g"}) == (
        "http://g/x {not} {other}"
    )


def test_a_missing_file_is_reported_not_raised_as_oserror(tmp_path: Path) -> None:
    with pytest.raises(TargetFileError, match="cannot read the file"):
        load_description(tmp_path / "nope.yaml")


def test_options_name_one_target_and_a_bad_file_is_an_option_error(tmp_path: Path) -> None:
    with pytest.raises(TargetOptionError, match="name one target"):
        make_target(TargetOptions(target_file="a.yaml", gateway_url="http://g"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: url\n")
    with pytest.raises(TargetOptionError, match=r"bad.yaml:1 gateway_url: field required"):
        make_target(TargetOptions(target_file=str(bad)))


def test_command_line_values_override_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONLAB_INTERNAL_KEY", "from-the-environment")
    target = make_target(
        TargetOptions(
            target_file=str(EXAMPLES / "reference-url.yaml"),
            internal_key="from-the-command-line",
            runtime_url="http://127.0.0.1:9/",
            turn_timeout=3,
        )
    )
    assert isinstance(target, UrlTarget)
    assert target.endpoints.internal_key == "from-the-command-line"
    assert target.endpoints.runtime_url == "http://127.0.0.1:9"
    assert target.turn_timeout == 3


def test_runtime_url_is_refused_for_a_launched_target() -> None:
    with pytest.raises(TargetOptionError, match="--runtime-url is for url targets"):
        make_target(
            TargetOptions(
                target_file=str(EXAMPLES / "reference-process.yaml"),
                runtime_url="http://127.0.0.1:9",
            )
        )
