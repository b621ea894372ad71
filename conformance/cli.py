"""The `sessionlab` command line. Each subcommand lives in the package that owns its work."""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import AnyHttpUrl, SecretStr, ValidationError

from conformance import __version__
from conformance.contract.requirements import PROFILES


def _secret(value: str | None) -> SecretStr | None:
    return None if value is None else SecretStr(value)


def _given(**values: Any) -> dict[str, Any]:
    # Only flags the user gave override the environment and the defaults.
    return {key: value for key, value in values.items() if value is not None}


def _user_tokens(
    pairs: list[str] | None, usage_error: Callable[[str], NoReturn]
) -> dict[str, str] | None:
    """`--user-token NAME=TOKEN` flags as the gateway's token -> name; None when none given.

    Messages name the flag's position, never its value: the value holds a token.
    """
    if not pairs:
        return None
    tokens: dict[str, str] = {}
    for position, pair in enumerate(pairs, start=1):
        name, sep, token = pair.partition("=")
        if not sep or not name or not token:
            usage_error(f"--user-token {position} is not NAME=TOKEN")
        if token in tokens:
            usage_error(f"--user-token {position} repeats the token of user {tokens[token]!r}")
        tokens[token] = name
    return tokens


def _serve(args: argparse.Namespace) -> int:
    from reference.serve import ServeError, ServeSettings, run
    from reference.settings import GatewaySettings, RuntimeSettings

    ports = {"runtime_port": args.runtime_port, "gateway_port": args.gateway_port}
    if args.port is not None:
        if args.service == "both":
            args.usage_error("--port names the port of `runtime` or `gateway` alone")
        ports[f"{args.service}_port"] = args.port
    try:
        serve = ServeSettings(
            **_given(
                host=args.host,
                **ports,
                log_level=args.log_level,
            )
        )
        runtime = RuntimeSettings(
            **_given(
                data_dir=args.data_dir,
                database_url=args.database_url,
                internal_key=_secret(args.internal_key),
                strict=False if args.tolerant else None,
            )
        )
        gateway = GatewaySettings(
            **_given(
                runtime_url=AnyHttpUrl(args.runtime_url) if args.runtime_url else None,
                internal_key=_secret(args.internal_key),
                client_key=_secret(args.client_key),
                turn_timeout=args.turn_timeout,
                strict=False if args.tolerant else None,
                user_tokens=_user_tokens(args.user_token, args.usage_error),
            )
        )
        return run(args.service, serve, runtime, gateway, args.runtime_url is not None)
    except (ServeError, ValidationError) as exc:
        print(f"sessionlab serve: {exc}", file=sys.stderr)
        return 2


def _schemas(args: argparse.Namespace) -> int:
    from conformance.contract.schema_export import SCHEMA_DIR, stale_schemas, write_schemas

    directory = Path(args.dir) if args.dir else SCHEMA_DIR
    if args.check:
        stale = stale_schemas(directory)
        if stale:
            print(f"stale JSON Schemas in {directory}: {', '.join(stale)}", file=sys.stderr)
            print("run `sessionlab schemas` and commit the result", file=sys.stderr)
            return 1
        print(f"JSON Schemas in {directory} are current")
        return 0
    written = write_schemas(directory)
    print(f"wrote {len(written)} JSON Schemas to {directory}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from conformance.target_options import TargetOptions
    from scenarios.cli import run_command

    return run_command(
        args.files,
        TargetOptions(
            target_file=args.target,
            target_factory=args.target_factory,
            gateway_url=args.gateway_url,
            runtime_url=args.runtime_url,
            client_key=args.client_key,
            internal_key=args.internal_key,
            turn_timeout=args.turn_timeout,
        ),
        junit_path=args.junit_xml,
        json_path=args.json,
    )


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("target (default: the reference, started in process)")
    where.add_argument("--target", help="target description file (YAML)")
    where.add_argument("--target-factory", metavar="MODULE:CALLABLE", help="a Target built in code")
    where.add_argument("--gateway-url", help="gateway base URL of a running target")
    where.add_argument("--runtime-url", help="runtime base URL")
    where.add_argument("--client-key", help="key the gateway requires of clients")
    where.add_argument("--internal-key", help="key the runtime requires")
    where.add_argument("--turn-timeout", type=float, help="seconds one agent turn may take")


def _positive_rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        rate = 0.0
    if not rate > 0:
        raise argparse.ArgumentTypeError(f"a positive number of requests a second, not {value!r}")
    return rate


def _smoke(args: argparse.Namespace) -> int:
    from conformance.smoke import run_smoke

    return run_smoke(data_dir=args.data_dir)


def _verify(args: argparse.Namespace) -> int:
    from conformance.verify import VerifyOptions, run_verify

    return run_verify(
        VerifyOptions(
            target=args.target,
            target_factory=args.target_factory,
            gateway_url=args.gateway_url,
            runtime_url=args.runtime_url,
            client_key=args.client_key,
            internal_key=args.internal_key,
            profiles=args.profile or [],
            only=args.only or [],
            turn_timeout=args.turn_timeout,
            deep=args.deep,
            json_path=args.json,
            junit_path=args.junit_xml,
            html_path=args.html,
            verbose=args.verbose,
            baseline=args.baseline,
            rate=args.rate,
        )
    )


def _bench(args: argparse.Namespace) -> int:
    from reference.bench import run_bench

    return run_bench(scale=args.scale)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionlab",
        description="Prove whether an implementation of the CodeLab session protocol works.",
    )
    parser.add_argument("--version", action="version", version=f"sessionlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the reference runtime and gateway",
        description="Run the reference Agent Runtime and Gateway on loopback until Ctrl-C or "
        "SIGTERM. Every option also reads SESSIONLAB_<OPTION> from the environment "
        "(e.g. SESSIONLAB_INTERNAL_KEY, SESSIONLAB_GATEWAY_PORT).",
    )
    serve.add_argument(
        "service",
        nargs="?",
        default="both",
        choices=["both", "runtime", "gateway"],
        help="which service to run (default: both)",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port of the one service named")
    serve.add_argument("--runtime-port", type=int, help="runtime port (default 8001)")
    serve.add_argument("--gateway-port", type=int, help="gateway port (default 8000)")
    serve.add_argument("--data-dir", type=Path, help="where the SQLite file lives")
    serve.add_argument("--database-url", help="SQLAlchemy async URL instead of the SQLite file")
    serve.add_argument("--runtime-url", help="runtime base URL the gateway talks to")
    serve.add_argument(
        "--internal-key", help="gateway-to-runtime key (default with both: random per run)"
    )
    serve.add_argument("--client-key", help="key the gateway requires of clients (default none)")
    serve.add_argument("--turn-timeout", type=float, help="seconds one agent turn may take")
    serve.add_argument(
        "--user-token",
        action="append",
        metavar="NAME=TOKEN",
        help="turn user auth on: user NAME signs in with bearer TOKEN (repeatable; environment: "
        'SESSIONLAB_USER_TOKENS=\'{"TOKEN": "NAME"}\')',
    )
    serve.add_argument(
        "--tolerant",
        action="store_true",
        default=None,
        help="accept unknown session ids like the described system (not strict)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=_serve, usage_error=serve.error)

    verify = commands.add_parser(
        "verify",
        help="check a target against the contract, requirement by requirement",
        description="Run the conformance checks against a target and report per requirement ID. "
        "With no target option it starts the reference stack itself. Exit status: 0 conforms, "
        "1 a MUST requirement failed, 2 usage error, 3 the run itself failed.",
    )
    _add_target_options(verify)
    what = verify.add_argument_group("what to check")
    what.add_argument(
        "--profile", action="append", choices=PROFILES, help="profile to check (repeatable)"
    )
    what.add_argument("--only", action="append", metavar="ID", help="requirement id or prefix")
    what.add_argument("--deep", action="store_true", help="many more generated examples")
    what.add_argument(
        "--baseline", type=Path, help="YAML of known failures and flaky requirement IDs"
    )
    what.add_argument(
        "--rate",
        type=_positive_rate,
        metavar="N",
        help="at most N requests (and socket opens) a second, for a target that rate-limits "
        "(a 429 slows the run down by itself)",
    )
    out = verify.add_argument_group("reports")
    out.add_argument("--json", type=Path, help="write the JSON report here")
    out.add_argument("--junit-xml", type=Path, help="write JUnit XML (one case per requirement)")
    out.add_argument("--html", type=Path, help="write the HTML report here")
    out.add_argument("-v", "--verbose", action="store_true", help="list every check as it runs")
    verify.set_defaults(handler=_verify)

    run = commands.add_parser(
        "run",
        help="run test plans (scenario files) against a target",
        description="Run scenario files step by step against a target. Every file is validated "
        "first; a bad one is reported with its file, line and reason and nothing runs. "
        "Exit status: 0 all passed or skipped, 1 a scenario failed, 2 bad input, 3 the run broke.",
    )
    run.add_argument("files", nargs="+", type=Path, help="scenario files or folders of them")
    _add_target_options(run)
    run.add_argument("--junit-xml", type=Path, help="write JUnit XML (one case per scenario)")
    run.add_argument("--json", type=Path, help="write the step-by-step results as JSON")
    run.set_defaults(handler=_run)

    smoke = commands.add_parser(
        "smoke",
        help="start the reference stack and smoke-check it end to end",
        description="Start the reference stack on free loopback ports and run a short end-to-end "
        "check through the gateway: create, list, a WebSocket turn, a switch, a restart.",
    )
    smoke.add_argument("--data-dir", type=Path, help="keep the store here (default: temporary)")
    smoke.set_defaults(handler=_smoke)

    schemas = commands.add_parser("schemas", help="write or check the contract's JSON Schemas")
    schemas.add_argument("--check", action="store_true", help="fail if the files are stale")
    schemas.add_argument("--dir", help="directory (default: the package's schemas/)")
    schemas.set_defaults(handler=_schemas)

    bench = commands.add_parser("bench", help="measure the reference stack, as ratios")
    bench.add_argument(
        "--scale", type=float, default=1.0, help="multiply every request count by this"
    )
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
