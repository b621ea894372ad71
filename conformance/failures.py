"""A failed check as a typed AssertionError: requirement, expected, received, how to reproduce."""

import json
from dataclasses import dataclass

from pydantic import BaseModel


class CheckFailure(AssertionError):
    """`W-BAD-1 failed: expected an error frame, received close 1011`."""

    def __init__(
        self, requirement: str, expected: str, received: str, reproduce: str | None = None
    ) -> None:
        self.requirement = requirement
        self.expected = expected
        self.received = received
        self.reproduce = reproduce
        message = f"{requirement} failed: expected {expected}, received {received}"
        if reproduce:
            message += f"\n  reproduce: {reproduce}"
        super().__init__(message)


@dataclass(frozen=True)
class Expect:
    """The checks' assertion helper, bound to one requirement id."""

    requirement: str

    def that(
        self, condition: bool, expected: str, received: object, reproduce: str | None = None
    ) -> None:
        if not condition:
            raise CheckFailure(self.requirement, expected, short(received), reproduce)

    def fail(self, expected: str, received: object, reproduce: str | None = None) -> None:
        raise CheckFailure(self.requirement, expected, short(received), reproduce)


def short(value: object, limit: int = 400) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    elif isinstance(value, list) and any(isinstance(item, BaseModel) for item in value):
        value = [
            item.model_dump(mode="json", exclude_none=True) if isinstance(item, BaseModel) else item
            for item in value
        ]
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list):
        # JSON, as the wire had it: readable unicode rather than repr's escapes.
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"
