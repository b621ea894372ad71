"""`sessionlab replay REPORT ID`: send a failed requirement's recorded exchange to a target again.

Each failing check of the requirement is replayed from its transcript in the JSON report, in order:
HTTP requests as recorded (method, URL, body, the X-Internal-Auth header where one was sent), event
streams read to their end, sockets opened on the recorded URL with the recorded frames sent in
order. What comes back is printed under what was recorded, so a tester sees the failure again
without sessionlab's checks judging it. Nothing here judges: the two are shown, marked where they
are the same.

The report holds no key: a recorded `<redacted>` is replaced by the key given with `--client-key` /
`--internal-key` or in SESSIONLAB_CLIENT_KEY / SESSIONLAB_INTERNAL_KEY, and whatever is printed
passes the same redaction as verify's output. Exit status: 0 when the exchange was sent again
(whatever came back), 2 when it could not be (no report, an unknown ID, one that did not fail, no
transcript, a key missing), 130 after Ctrl-C.
"""

import ast
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from conformance import secrecy
from conformance.probes import TEST_HEADER, describe_close
from conformance.reports.model import CheckEntry, RequirementVerdict, TranscriptEntry, VerifyReport
from conformance.reproduce import (
    CLIENT_KEY_VARIABLE,
    INTERNAL_KEY_VARIABLE,
    REQUEST,
    USER_TOKEN_VARIABLE,
    WIRE,
    key_reference,
)
from conformance.secrecy import REDACTED
from conformance.transcript import Transcript, body_text
from contract.exit_codes import ExitCode

# A requirement whose checks failed: a MUST's failure, or a SHOULD's (a warning).
REPLAYABLE = ("failed", "warning")
# What a requirement that did not fail was, in words.
DID_NOT_FAIL = {
    "passed": "passed",
    "partial": "passed as far as it was checked",
    "skipped": "was skipped",
    "error": "ended in sessionlab's own error, not the target's",
}
# After the last recorded answer on a socket, how long more frames may keep coming: a target that
# now says more than it did is shown saying it.
QUIET = 2.0
# A stream read to its end is still cut after this many times the answer timeout.
STREAM_ROUNDS = 10
INDENT = "    "
LABEL = 10
BINARY = re.compile(r"<binary (\d+) bytes>")
CUT = re.compile(r"… \((\d+) characters\)$")
# How probes.http_probe records an answer: `STATUS CONTENT-TYPE BODY`, the type with parameters.
ANSWER = re.compile(
    r"(?P<status>\d{3}) (?P<type>[\w.+-]+/[\w.+-]+(?:;\s*[\w-]+=[^\s;]+)*)?\s?(?P<body>.*)",
    re.DOTALL,
)


class ReplayError(Exception):
    """Why the exchange cannot be replayed; said in one sentence, exit status 2."""


@dataclass
class ReplayOptions:
    report: Path
    requirement_id: str
    gateway_url: str | None = None
    runtime_url: str | None = None
    # Out of the repr: options show up in tracebacks.
    client_key: str | None = field(default=None, repr=False)
    internal_key: str | None = field(default=None, repr=False)
    user_token: str | None = field(default=None, repr=False)
    timeout: float = 10.0

    def keys(self) -> "Keys":
        """A flag wins over its variable; an empty variable counts as unset."""

        def given(flag: str | None, variable: str) -> str | None:
            return flag or os.environ.get(variable) or None

        return Keys(
            client=given(self.client_key, CLIENT_KEY_VARIABLE),
            internal=given(self.internal_key, INTERNAL_KEY_VARIABLE),
            user_token=given(self.user_token, USER_TOKEN_VARIABLE),
        )


@dataclass(frozen=True)
class Keys:
    client: str | None = field(default=None, repr=False)
    internal: str | None = field(default=None, repr=False)
    user_token: str | None = field(default=None, repr=False)

    def all(self) -> list[str]:
        return [key for key in (self.client, self.internal, self.user_token) if key]


@dataclass
class Step:
    """One thing the check did, with what came back to it as recorded."""

    kind: Literal["http", "ws-open", "ws-send", "ws-close"]
    text: str
    recorded: list[str] = field(default_factory=list)


def steps_of(transcript: Sequence[TranscriptEntry]) -> list[Step]:
    """The transcript as the check's actions, each answer attached to what it answered: a response
    to the oldest request still unanswered, a frame or a close by the target to the last socket
    action before it."""
    steps: list[Step] = []
    unanswered: list[Step] = []
    on_socket: Step | None = None
    for entry in transcript:
        kind, text = entry.kind, entry.text
        if kind == "http-request":
            steps.append(Step("http", text))
            unanswered.append(steps[-1])
        elif kind == "http-response" and unanswered:
            unanswered.pop(0).recorded.append(text)
        elif kind in ("ws-open", "ws-send"):
            steps.append(Step("ws-open" if kind == "ws-open" else "ws-send", text))
            on_socket = steps[-1]
        elif kind == "ws-close" and text.startswith("closed by sessionlab"):
            steps.append(Step("ws-close", text))
            on_socket = None
        elif kind in ("ws-recv", "ws-close") and on_socket is not None:
            on_socket.recorded.append(text)
    return steps


def load_failure(path: Path, requirement_id: str) -> tuple[VerifyReport, RequirementVerdict]:
    """The report and the failed requirement to replay; ReplayError says why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReplayError(
            f"no report at {path} (write one with `sessionlab verify --json`)"
        ) from None
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ReplayError(f"{path} is not JSON ({exc})") from None
    try:
        report = VerifyReport.model_validate(document)
    except ValidationError:
        raise ReplayError(f"{path} is not a report of `sessionlab verify --json`") from None
    requirements = report.requirements
    failed = [r.id for r in requirements if r.status in REPLAYABLE]
    found = [r for r in requirements if r.id.upper() == requirement_id.upper()]
    if not found:
        raise ReplayError(f"no requirement {requirement_id} in {path}; {_these(failed)}")
    requirement = found[0]
    status = requirement.status
    if status not in REPLAYABLE:
        message = requirement.message
        why = f"{DID_NOT_FAIL.get(status, status)} ({message})" if message else status
        if status == "blocked" and requirement.blocked_by:
            blocking = ", ".join(requirement.blocked_by)
            why = f"was blocked by {blocking}, whose failure it stands on: replay {blocking}"
        raise ReplayError(f"{requirement.id} did not fail in that run: it {why}; {_these(failed)}")
    if not any(_wire(c) for r in requirements for c in r.checks):
        raise ReplayError(
            f"{path} holds no transcripts: nothing recorded can be sent again (a report of "
            "`sessionlab verify --json` keeps the transcript of every failed check)"
        )
    if not [c for c in _failing(requirement) if _wire(c)]:
        raise ReplayError(
            f"{requirement.id} failed without a wire exchange to send again: its failing "
            f"checks recorded none ({requirement.message})"
        )
    return report, requirement


def _these(failed: list[str]) -> str:
    if not failed:
        return "nothing failed in that run"
    return f"the requirements that failed: {', '.join(failed)}"


def _failing(requirement: RequirementVerdict) -> list[CheckEntry]:
    return [c for c in requirement.checks if c.outcome == "failed"]


def _wire(check: CheckEntry) -> list[TranscriptEntry]:
    return [e for e in check.transcript if e.kind in WIRE]


def _under(url: str, base: str | None) -> bool:
    if not base:
        return False
    base = base.rstrip("/")
    return url == base or url.startswith((base + "/", base + "?"))


def _ws(base: str) -> str:
    return re.sub(r"^http", "ws", base)


def _split(answer: str) -> tuple[str, str, str] | None:
    """Status, content type and body of a recorded (or now-recorded) HTTP answer."""
    match = ANSWER.fullmatch(answer)
    if match is None:
        return None
    return match["status"], match["type"] or "", match["body"]


def shown_lines(answer: str) -> list[str]:
    """An answer as printed: an event stream one event a line, anything else as it is."""
    parts = _split(answer)
    if parts is None or not parts[1].startswith("text/event-stream"):
        return answer.splitlines() or [""]
    status, kind, body = parts
    events = [" ".join(block.splitlines()) for block in re.split(r"\n\n+", body) if block.strip()]
    return [f"{status} {kind} ({len(events)} event(s))", *events]


class Replayer:
    def __init__(self, report: VerifyReport, options: ReplayOptions, keys: Keys) -> None:
        target = report.target
        self.recorded_gateway = target.gateway_url if target else None
        self.recorded_runtime = target.runtime_url if target else None
        self.gateway = options.gateway_url or self.recorded_gateway
        self.runtime = options.runtime_url or self.recorded_runtime
        self.keys = keys
        self.timeout = options.timeout
        # Ids the target made anew (a created session): the record's id -> today's.
        self.ids: dict[str, str] = {}
        self.same = 0
        self.different = 0
        self.sockets: list[tuple[str, ClientConnection]] = []
        self.closed: set[int] = set()
        # Today's answers pass the same redaction and cutting as the recorded ones did.
        self.now = Transcript()
        self.now.add_secrets(keys.all())
        self.nodeid = ""

    # Printing

    def say(self, text: str = "") -> None:
        print(self.now.redact(text), flush=True)

    def pair(self, recorded: str | None, now: str) -> None:
        """What was recorded, then what came now, marked when the two are the same."""
        if recorded is not None:
            recorded = self.mapped(recorded)
        same = recorded == now
        if recorded is None:
            self.say(f"{INDENT}{'recorded':<{LABEL}}(nothing)")
        else:
            self.lines("recorded", shown_lines(recorded))
        self.lines("now", shown_lines(now), "  (as recorded)" if same else "")
        if same:
            self.same += 1
        else:
            self.different += 1

    def lines(self, label: str, lines: list[str], mark: str = "") -> None:
        first, *more = lines
        self.say(f"{INDENT}{label:<{LABEL}}{first}{mark if not more else ''}")
        for line in more:
            self.say(f"{INDENT}{'':<{LABEL}}{line}")
        if more and mark:
            self.say(f"{INDENT}{'':<{LABEL}}{mark.strip()}")

    def record(self, kind: str, text: str) -> str:
        self.now.record(kind, text)
        return self.now.entries[-1].text

    # Where things go today

    def mapped(self, text: str) -> str:
        for old, new in self.ids.items():
            text = text.replace(old, new)
        return text

    def party(self, url: str) -> str:
        return "runtime" if _under(url, self.recorded_runtime) else "gateway"

    def url(self, url: str) -> str:
        url = self.mapped(url)
        for recorded, now in (
            (self.recorded_runtime, self.runtime),
            (self.recorded_gateway, self.gateway),
        ):
            if recorded and now and _under(url, recorded):
                return now.rstrip("/") + url[len(recorded.rstrip("/")) :]
            if recorded and now and _under(url, _ws(recorded)):
                return _ws(now.rstrip("/")) + url[len(_ws(recorded.rstrip("/"))) :]
        return url

    # Replaying

    async def check(self, check: CheckEntry) -> None:
        self.nodeid = check.nodeid
        steps = steps_of(_wire(check))
        async with httpx.AsyncClient(
            timeout=self.timeout, trust_env=False, follow_redirects=False
        ) as client:
            try:
                for number, step in enumerate(steps):
                    if step.kind == "http":
                        await self.http(client, step)
                    else:
                        await self.socket_step(step, last=_last_on_socket(steps, number))
                await self.drain_earlier()
            finally:
                for _, socket in self.sockets:
                    await socket.close()
                self.sockets.clear()
                self.closed.clear()

    async def http(self, client: httpx.AsyncClient, step: Step) -> None:
        match = REQUEST.match(step.text)
        if match is None:
            self.say(f"  IDE → ?        {step.text}")
            self.say(f"{INDENT}{'now':<{LABEL}}not sent: not a request this replay can read")
            return
        method, url = match["method"], self.url(match["url"])
        party = self.party(match["url"])
        body = self.mapped(step.text[match.end() :].strip())
        headers = {TEST_HEADER: f"replay of {self.nodeid}"}
        shown = ""
        if match["key"]:
            sent = _recorded_key(match["key"])
            key = self.keys.internal if party == "runtime" else self.keys.client
            variable = INTERNAL_KEY_VARIABLE if party == "runtime" else CLIENT_KEY_VARIABLE
            headers["X-Internal-Auth"] = sent.replace(REDACTED, key or "")
            shown = f"  [X-Internal-Auth: {key_reference(sent, variable)}]"
        if self.keys.user_token and party == "gateway":
            headers["Authorization"] = f"Bearer {self.keys.user_token}"
        if body:
            headers["Content-Type"] = "application/json"
        self.say(f"  IDE → {party:<8} {method} {url}{' ' + body if body else ''}{shown}")
        cut = CUT.search(body)
        if cut:
            self.say(
                f"{INDENT}{'':<{LABEL}}(cut in the report, of {cut[1]} characters: sent as cut)"
            )
        now = await self.send(client, method, url, headers, body)
        recorded = step.recorded[0] if step.recorded else None
        self.pair(recorded, now)
        if recorded is not None and method == "POST":
            self.learn(recorded, now)

    async def send(
        self, client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], body: str
    ) -> str:
        stopped = ""
        try:
            async with client.stream(
                method, url, headers=headers, content=body.encode("utf-8", "surrogatepass")
            ) as response:
                chunks: list[bytes] = []
                try:
                    async with asyncio.timeout(self.timeout * STREAM_ROUNDS):
                        async for chunk in response.aiter_raw():
                            chunks.append(chunk)
                except httpx.ReadTimeout:
                    stopped = f"  (nothing more for {self.timeout:g} s: stopped reading)"
                except TimeoutError:
                    stopped = (
                        f"  (still sending after {self.timeout * STREAM_ROUNDS:g} s: "
                        "stopped reading)"
                    )
                kind = response.headers.get("content-type", "")
                text = f"{response.status_code} {kind} {body_text(b''.join(chunks))}".rstrip()
        except httpx.ConnectError as exc:
            text = f"no connection ({exc})"
        except httpx.TimeoutException:
            text = f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            text = f"the connection broke ({exc})"
        return self.record("http-response", text) + stopped

    def learn(self, recorded: str, now: str) -> None:
        """A session the target created today stands for the recorded one in later steps."""
        old, new = _created(self.mapped(recorded)), _created(now)
        if old and new and old != new:
            self.ids[old] = new
            self.say(f"{INDENT}{'':<{LABEL}}(the recorded {old} is {new} from here on)")

    async def socket_step(self, step: Step, last: bool) -> None:
        if step.kind == "ws-open":
            await self.open(step, last)
            return
        current = self.current()
        if step.kind == "ws-close":
            self.say("  IDE → gateway  close the socket, as the check did")
            if current is not None:
                await current.close()
                self.closed.add(id(current))
            return
        text = self.mapped(step.text)
        self.say(f"  IDE → gateway  send {text or '(an empty text frame)'}")
        cut = CUT.search(text)
        if cut:
            self.say(
                f"{INDENT}{'':<{LABEL}}(cut in the report, of {cut[1]} characters: sent as cut)"
            )
        if current is None:
            self.pair(_first(step.recorded), "not sent: no socket is open")
            return
        try:
            binary = BINARY.fullmatch(text)
            if binary:
                self.say(f"{INDENT}{'':<{LABEL}}(its bytes are not recorded: zeros sent)")
                await current.send(bytes(int(binary[1])))
            else:
                await current.send(text)
        except ConnectionClosed as closed:
            self.closed.add(id(current))
            self.pair(_first(step.recorded), self.record("ws-close", describe_close(closed)))
            return
        await self.answers(current, step.recorded, last)

    async def open(self, step: Step, last: bool) -> None:
        url = self.url(step.text)
        self.say(f"  IDE → gateway  open {url}")
        headers = {TEST_HEADER: f"replay of {self.nodeid}"}
        if self.keys.user_token:
            headers["Authorization"] = f"Bearer {self.keys.user_token}"
        try:
            async with asyncio.timeout(self.timeout):
                socket = await connect(
                    url,
                    additional_headers=headers,
                    open_timeout=self.timeout,
                    ping_interval=None,
                    max_size=None,
                )
        except InvalidStatus as exc:
            refused = f"refused: HTTP {exc.response.status_code}"
            self.pair(_first(step.recorded), self.record("ws-close", refused))
            return
        except (InvalidHandshake, OSError) as exc:
            self.pair(_first(step.recorded), self.record("ws-close", f"no socket ({exc})"))
            return
        except TimeoutError:
            self.pair(
                _first(step.recorded), self.record("ws-close", f"no answer in {self.timeout:g} s")
            )
            return
        self.sockets.append((url, socket))
        self.say(f"{INDENT}{'now':<{LABEL}}open")
        await self.answers(socket, step.recorded, last)

    def current(self) -> ClientConnection | None:
        if not self.sockets or id(self.sockets[-1][1]) in self.closed:
            return None
        return self.sockets[-1][1]

    async def answers(self, socket: ClientConnection, recorded: list[str], last: bool) -> None:
        """Frames for as many as were recorded (and up to the close, if the target closed it);
        after the socket's last step, whatever else comes before it goes quiet."""
        frames = [r for r in recorded if not r.startswith("close ")]
        closes = len(frames) < len(recorded)
        came: list[str] = []
        while True:
            beyond = len(came) >= len(frames) and not closes
            if beyond and not last:
                break
            wait = min(QUIET, self.timeout) if beyond else self.timeout
            try:
                message = await asyncio.wait_for(socket.recv(), wait)
            except TimeoutError:
                if not beyond:
                    came.append(f"no frame within {wait:g} s; the socket is still open")
                break
            except ConnectionClosed as closed:
                self.closed.add(id(socket))
                came.append(self.record("ws-close", describe_close(closed)))
                break
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            came.append(self.record("ws-recv", text))
        for number in range(max(len(recorded), len(came))):
            self.say(f"  gateway → IDE  answer {number + 1}")
            self.pair(
                recorded[number] if number < len(recorded) else None,
                came[number] if number < len(came) else "(nothing)",
            )

    async def drain_earlier(self) -> None:
        """Frames that came on a socket opened before the last: the transcript did not say which
        socket a frame came on, so they are shown at the end."""
        for url, socket in self.sockets[:-1]:
            if id(socket) in self.closed:
                continue
            while True:
                try:
                    message = await asyncio.wait_for(socket.recv(), min(QUIET, self.timeout))
                except (TimeoutError, ConnectionClosed):
                    break
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                self.say(f"  gateway → IDE  on the earlier socket {url}")
                self.pair(None, self.record("ws-recv", text))


def _last_on_socket(steps: list[Step], number: int) -> bool:
    """No later send or close on the socket of this step, before another socket opens."""
    for later in steps[number + 1 :]:
        if later.kind == "ws-open":
            return True
        if later.kind in ("ws-send", "ws-close"):
            return False
    return True


def _first(recorded: list[str]) -> str | None:
    return recorded[0] if recorded else None


def _recorded_key(shown: str) -> str:
    try:
        return str(ast.literal_eval(shown)["x-internal-auth"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        return REDACTED


def _created(answer: str) -> str | None:
    parts = _split(answer)
    if parts is None:
        return None
    try:
        body = json.loads(parts[2])
    except ValueError:
        return None
    made = body.get("session_id") if isinstance(body, dict) else None
    return made if isinstance(made, str) else None


def _needed_keys(checks: list[CheckEntry], replayer: Replayer) -> list[str]:
    """The variables whose keys the recorded requests carried and that are not given."""
    missing: list[str] = []
    for check in checks:
        for step in steps_of(_wire(check)):
            match = REQUEST.match(step.text) if step.kind == "http" else None
            if match is None or not match["key"] or REDACTED not in _recorded_key(match["key"]):
                continue
            runtime = replayer.party(match["url"]) == "runtime"
            key = replayer.keys.internal if runtime else replayer.keys.client
            variable = INTERNAL_KEY_VARIABLE if runtime else CLIENT_KEY_VARIABLE
            if not key and variable not in missing:
                missing.append(variable)
    return missing


def _where(name: str, now: str | None, recorded: str | None) -> str:
    if now is None:
        return f"{name:<{LABEL}}not recorded"
    if now == recorded:
        return f"{name:<{LABEL}}{now} (as recorded)"
    return f"{name:<{LABEL}}{now} (recorded: {recorded or 'none'})"


async def _replay(requirement: RequirementVerdict, replayer: Replayer) -> None:
    checks = [c for c in _failing(requirement) if _wire(c)]
    replayer.say(
        f"sessionlab replay — {requirement.id} ({requirement.level}, "
        f"{requirement.profile}) {requirement.title}".rstrip()
    )
    replayer.say(_where("gateway", replayer.gateway, replayer.recorded_gateway))
    if replayer.recorded_runtime or replayer.runtime:
        replayer.say(_where("runtime", replayer.runtime, replayer.recorded_runtime))
    for number, check in enumerate(checks, start=1):
        replayer.say()
        replayer.say(f"check {number} of {len(checks)}  {check.nodeid}")
        if check.expected:
            replayer.say(f"{INDENT}{'expected':<{LABEL}}{check.expected}")
        replayer.say(f"{INDENT}{'received':<{LABEL}}{check.received or check.message}")
        replayer.say()
        await replayer.check(check)
    replayer.say()
    replayer.say(
        f"replayed {len(checks)} check(s) of {requirement.id}: {replayer.same} answer(s) as "
        f"recorded, {replayer.different} not"
    )


def run_replay(options: ReplayOptions) -> int:
    keys = options.keys()
    secrecy.remember(keys.all())
    try:
        report, requirement = load_failure(options.report, options.requirement_id)
        replayer = Replayer(report, options, keys)
        if options.runtime_url and not replayer.recorded_runtime:
            raise ReplayError(
                "the report names no runtime URL: --runtime-url has nothing to stand for"
            )
        missing = _needed_keys(_failing(requirement), replayer)
        if missing:
            raise ReplayError(
                f"the recorded requests of {requirement.id} carried a key: set "
                f"{' and '.join(missing)} (or give --client-key / --internal-key)"
            )
    except ReplayError as exc:
        print(secrecy.redact(f"sessionlab replay: {exc}"), file=sys.stderr, flush=True)
        return ExitCode.BAD_INPUT
    try:
        asyncio.run(_replay(requirement, replayer))
    except KeyboardInterrupt:
        print("sessionlab replay: stopped", file=sys.stderr, flush=True)
        return ExitCode.INTERRUPTED
    return ExitCode.OK
