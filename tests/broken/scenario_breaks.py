"""Reference variants that break what a test plan checks, for the scenario tests."""

import re
from typing import Any

from conformance.targets.reference_target import ReferenceTarget
from tests.broken.asgi import rewrite_json


def history_always_empty() -> ReferenceTarget:
    """The gateway answers every history with no messages: a switch shows an empty chat."""
    pattern = re.compile(r"/sessions/[^/]+/history")

    def empty(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "messages": [], "message_count": 0}

    return ReferenceTarget(
        gateway_wrapper=rewrite_json(lambda m, p: m == "GET" and bool(pattern.fullmatch(p)), empty)
    )
