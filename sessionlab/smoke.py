"""`sessionlab smoke`: start the reference stack in this process and check it end to end.

The steps follow the design note's test plans TP-1 and TP-2 through the gateway, as an IDE would.
"""

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from contract.exit_codes import ExitCode
from contract.frames import AssistantMessageFrame, ErrorFrame, parse_server_frame
from contract.ids import is_server_session_id
from contract.routes import CREATE_SESSION, HISTORY, LIST_SESSIONS, SOCKET
from reference.keys import random_key
from reference.server import ThreadedServer
from reference.stack import StackChoices, ThreadedStack

STEP_DEADLINE = 10.0


class SmokeFailure(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


async def final_reply(socket: ClientConnection) -> str:
    parts = []
    while True:
        frame = parse_server_frame(await socket.recv())
        check(not isinstance(frame, ErrorFrame), f"error frame during a turn: {frame}")
        if isinstance(frame, AssistantMessageFrame):
            parts.append(frame.text)
            if frame.is_final:
                return "".join(parts)


class Smoke:
    def __init__(self, gateway_url: str, runtime: ThreadedServer) -> None:
        self.http = httpx.AsyncClient(base_url=gateway_url, timeout=STEP_DEADLINE)
        self.ws_base = gateway_url.replace("http://", "ws://", 1)
        self.runtime = runtime
        self.ids: list[str] = []

    async def create(self) -> None:
        response = await self.http.post(CREATE_SESSION.path())
        check(
            response.status_code in (200, 201), f"{CREATE_SESSION} answered {response.status_code}"
        )
        session_id = response.json()["session_id"]
        check(is_server_session_id(session_id), f"id {session_id!r} is not session_<16 hex>")
        self.ids.append(session_id)

    async def listed(self) -> None:
        body = (await self.http.get(LIST_SESSIONS.path())).json()
        listed = {info["session_id"] for info in body["sessions"]}
        check(set(self.ids) <= listed, f"created sessions missing from the list: {body}")

    async def chat(self) -> None:
        async with connect(self.ws_base + SOCKET.path(session_id=self.ids[0])) as socket:
            await socket.send(
                json.dumps({"type": "user_message", "content": "hello", "role": "user"})
            )
            reply = await final_reply(socket)
            check(reply == "hello", f"the script agent answered {reply!r}, expected 'hello'")
            await socket.send("not json")
            error = parse_server_frame(await socket.recv())
            check(isinstance(error, ErrorFrame), f"a bad frame got {error}, not an error frame")
            await socket.send(
                json.dumps({"type": "user_message", "content": "again", "role": "user"})
            )
            check(await final_reply(socket) == "again", "the socket did not work after a bad frame")

    async def switch(self) -> None:
        await self.create()
        history = (await self.http.get(HISTORY.path(session_id=self.ids[0]))).json()
        contents = [message["content"] for message in history["messages"]]
        check(contents[:2] == ["hello", "hello"], f"history of the first session: {contents}")
        async with connect(self.ws_base + SOCKET.path(session_id=self.ids[1])) as socket:
            await socket.send(
                json.dumps({"type": "user_message", "content": "second", "role": "user"})
            )
            check(await final_reply(socket) == "second", "no reply in the second session")

    async def restart(self) -> None:
        await asyncio.to_thread(self.runtime.restart)
        for session_id in self.ids:
            response = await self.http.get(HISTORY.path(session_id=session_id))
            check(response.status_code == 200, f"{session_id} lost after a runtime restart")

    async def close(self) -> None:
        await self.http.aclose()


async def _run_steps(smoke: Smoke) -> tuple[int, int]:
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("create a session through the gateway (TP-1)", smoke.create),
        ("the session is listed", smoke.listed),
        ("chat over the WebSocket; a bad frame gets an error frame", smoke.chat),
        ("create another, load the first's history, chat in the second (TP-2)", smoke.switch),
        ("restart the runtime: every session is still there", smoke.restart),
    ]
    failed = 0
    for title, step in steps:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(STEP_DEADLINE * 3):
                await step()
            outcome = "PASS"
        except (SmokeFailure, TimeoutError, OSError, httpx.HTTPError) as exc:
            failed += 1
            outcome = f"FAIL  {type(exc).__name__}: {exc}"
        print(f"  {outcome[:4]}  {title} ({time.perf_counter() - started:.2f} s){outcome[4:]}")
    return len(steps) - failed, failed


def run_smoke(data_dir: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="sessionlab-") as scratch:
        choices = StackChoices(data_dir=data_dir or Path(scratch), internal_key=random_key())
        with ThreadedStack(choices) as stack:
            gateway, runtime = stack.gateway, stack.runtime
            print(f"reference stack: gateway {gateway.url}, runtime {runtime.url}")
            smoke = Smoke(gateway.url, runtime)

            async def main() -> tuple[int, int]:
                try:
                    return await _run_steps(smoke)
                finally:
                    await smoke.close()

            passed, failed = asyncio.run(main())
    print(f"{passed} passed, {failed} failed")
    return ExitCode.OK if failed == 0 else ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(run_smoke())
