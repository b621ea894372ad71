"""A line a tester can act on to see a failure again, built from the failing check's transcript.

For HTTP it is the `curl` commands of the check's last requests (one a line) to paste; keys appear
as environment variable references (`$SESSIONLAB_CLIENT_KEY`, `$SESSIONLAB_INTERNAL_KEY`), never as
their values. For a WebSocket it
says where to connect and which frames to send, in order. A failure whose exchange holds a socket or
an event stream, which curl cannot replay, also gets the `sessionlab replay REPORT ID` command that
sends it again. A generated example also gets the `SESSIONLAB_SEED=... sessionlab verify --only ...`
line that replays the run's examples.
"""

import ast
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.secrecy import REDACTED
from contract.routes import MESSAGE_STREAM

CLIENT_KEY_VARIABLE = "SESSIONLAB_CLIENT_KEY"
INTERNAL_KEY_VARIABLE = "SESSIONLAB_INTERNAL_KEY"
USER_TOKEN_VARIABLE = "SESSIONLAB_USER_TOKEN"
WIRE = ("http-request", "http-response", "ws-open", "ws-send", "ws-recv", "ws-close")
# How probes.http_probe records a request: `METHOD URL[ {'x-internal-auth': '...'}][ BODY]`.
REQUEST = re.compile(r"(?P<method>[A-Z]+) (?P<url>\S+)(?: (?P<key>\{'x-internal-auth': [^}]*\}))?")
SEED = re.compile(r"\(seed (\d+)\)")
# How probes.http_probe records an answer: `STATUS CONTENT-TYPE BODY`.
EVENT_STREAM = re.compile(r"\d{3} text/event-stream\b")
SHOWN_FRAMES = 4
SHOWN_REQUESTS = 3
FRAME_LIMIT = 160


@dataclass(frozen=True)
class Where:
    """What the reproduce line needs to know of the target, none of it secret."""

    runtime_url: str | None = None
    has_user_tokens: bool = False
    # The target options of `sessionlab verify` that name this target, keys as variables.
    verify_options: tuple[str, ...] = ()
    # Where this run's JSON report is written, for the replay command; None when it is not.
    report_path: str | None = None


def sessionlab_replay(
    transcript: Sequence[dict[str, Any]], requirement_id: str, where: Where
) -> str | None:
    """`sessionlab replay REPORT ID` for an exchange holding a socket or an event stream."""
    if not any(_streams(entry) for entry in transcript):
        return None
    if where.report_path is None:
        # The command needs the report: a shell comment says how to get one, and stays pasteable.
        return f"sessionlab replay report.json {requirement_id}  # with --json report.json"
    return f"sessionlab replay {shlex.quote(where.report_path)} {shlex.quote(requirement_id)}"


# The hook for the command that sends a socket or stream exchange again: given the failing check's
# transcript, the requirement it failed and the target, a line added under the others (None: no
# line).
ReplayCommand = Callable[[Sequence[dict[str, Any]], str, Where], str | None]
replay_command: ReplayCommand | None = sessionlab_replay


def reproduce_line(
    transcript: Sequence[dict[str, Any]], where: Where, requirement_id: str | None = None
) -> str | None:
    """How to send again what the check sent last before it failed; None without wire traffic."""
    wire = [entry for entry in transcript if entry["kind"] in WIRE]
    if not wire:
        return None
    if wire[-1]["kind"].startswith("ws-"):
        lines = [_socket_line(wire)]
    else:
        # The failing answer is not always the last one (a check may read the history after the
        # request it judges): the last few requests, in order, one command a line.
        commands: list[str] = []
        for entry in wire:
            command = _curl(entry["text"], where) if entry["kind"] == "http-request" else None
            if command and (not commands or commands[-1] != command):
                commands.append(command)
        lines = commands[-SHOWN_REQUESTS:]
    if replay_command is not None and requirement_id is not None:
        replay = replay_command(wire, requirement_id, where)
        if replay:
            lines.append(replay)
    return "\n".join(lines) or None


def replay_line(
    transcript: Sequence[dict[str, Any]], requirement_id: str, where: Where
) -> str | None:
    """For a failure found by generated examples: the command that replays the run's examples."""
    seeds = [m.group(1) for entry in transcript for m in SEED.finditer(entry["text"])]
    if not seeds:
        return None
    options = " ".join(where.verify_options)
    command = f"SESSIONLAB_SEED={seeds[-1]} sessionlab verify {options} --only {requirement_id}"
    return re.sub(" +", " ", command)


def key_reference(value: str, variable: str) -> str:
    """The header's value with the configured key as a variable; the rest stays as sent (a
    check's wrong key is the right one with more after it)."""
    if value == REDACTED:
        return f"${variable}"
    return value.replace(REDACTED, "${" + variable + "}")


def _curl(text: str, where: Where) -> str | None:
    match = REQUEST.match(text)
    if match is None:
        return None
    method, url = match["method"], match["url"]
    body = text[match.end() :].strip()
    to_runtime = where.runtime_url is not None and url.startswith(where.runtime_url)
    variable = INTERNAL_KEY_VARIABLE if to_runtime else CLIENT_KEY_VARIABLE
    parts = ["curl", "-sS", "-i"]
    if url.endswith(MESSAGE_STREAM.path()):
        parts.append("-N")  # an event stream: show events as they come
    parts += ["-X", method, shlex.quote(url)]
    if match["key"]:
        try:
            sent = ast.literal_eval(match["key"])["x-internal-auth"]
        except (ValueError, SyntaxError, KeyError):
            sent = REDACTED
        parts += ["-H", f'"X-Internal-Auth: {key_reference(str(sent), variable)}"']
    if where.has_user_tokens and not to_runtime:
        parts += ["-H", f'"Authorization: Bearer ${USER_TOKEN_VARIABLE}"']
    if body:
        parts += ["-H", "'Content-Type: application/json'", "--data-raw", shlex.quote(body)]
    return " ".join(parts)


def _socket_line(wire: Sequence[dict[str, Any]]) -> str:
    opened = max((i for i, e in enumerate(wire) if e["kind"] == "ws-open"), default=None)
    if opened is None:
        return "send again the frames of the transcript, in order"
    url = wire[opened]["text"]
    sent = [_short(e["text"]) for e in wire[opened + 1 :] if e["kind"] == "ws-send"]
    if not sent:
        return f"open {url} (a WebSocket); the failure came before anything was sent"
    shown = sent[-SHOWN_FRAMES:]
    earlier = len(sent) - len(shown)
    lead = f"(after {earlier} earlier frame(s) of the transcript) " if earlier else ""
    return f"open {url} (a WebSocket) and send, in order: {lead}{' then '.join(shown)}"


def _streams(entry: dict[str, Any]) -> bool:
    """A socket frame, or an answer that is an event stream: what curl lines cannot replay."""
    if entry["kind"].startswith("ws-"):
        return True
    return entry["kind"] == "http-response" and EVENT_STREAM.match(entry["text"]) is not None


def _short(text: str) -> str:
    return text if len(text) <= FRAME_LIMIT else text[:FRAME_LIMIT] + "…"
