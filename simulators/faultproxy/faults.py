"""Fault definitions: immutable values, checked when built, applied by the proxy."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar


class Direction(StrEnum):
    """Which bytes a fault touches, seen from the client that dials the proxy."""

    UPSTREAM = "upstream"  # client -> server
    DOWNSTREAM = "downstream"  # server -> client
    BOTH = "both"

    @classmethod
    def parse(cls, value: Direction | str, *, field_name: str = "direction") -> Direction:
        if isinstance(value, Direction):
            return value
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(d.value for d in cls)
            raise ValueError(f"{field_name} must be one of {choices}; got {value!r}") from None

    def covers(self, flow: Direction) -> bool:
        """Whether a fault scoped to self acts on bytes flowing in ``flow``."""
        return self is Direction.BOTH or self is flow


def _number(owner: str, name: str, value: object) -> float:
    # bool is an int subclass; True as a latency is a bug, not one millisecond.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner}.{name} must be a number; got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be finite; got {value!r}")
    return float(value)


def _at_least(owner: str, name: str, value: object, floor: float) -> None:
    if _number(owner, name, value) < floor:
        raise ValueError(f"{owner}.{name} must be >= {floor:g}; got {value!r}")


def _positive(owner: str, name: str, value: object) -> None:
    if _number(owner, name, value) <= 0:
        raise ValueError(f"{owner}.{name} must be > 0; got {value!r}")


def _whole(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int; got {value!r}")


def _set_direction(fault: object, value: Direction | str) -> None:
    # Frozen dataclass: normalising "downstream" -> Direction.DOWNSTREAM needs the escape hatch.
    object.__setattr__(fault, "direction", Direction.parse(value))


@dataclass(frozen=True)
class Latency:
    """Hold each chunk ``ms`` (+/- uniform ``jitter_ms``) after it reached the proxy."""

    ms: float
    jitter_ms: float = 0
    direction: Direction = field(default=Direction.BOTH)

    kind: ClassVar[str] = "latency"

    def __post_init__(self) -> None:
        _at_least("Latency", "ms", self.ms, 0)
        _at_least("Latency", "jitter_ms", self.jitter_ms, 0)
        _set_direction(self, self.direction)


@dataclass(frozen=True)
class Bandwidth:
    """Pace bytes so that no more than ``bytes_per_second`` pass."""

    bytes_per_second: float
    direction: Direction = field(default=Direction.BOTH)

    kind: ClassVar[str] = "bandwidth"

    def __post_init__(self) -> None:
        _positive("Bandwidth", "bytes_per_second", self.bytes_per_second)
        _set_direction(self, self.direction)


@dataclass(frozen=True)
class Slice:
    """Split each chunk into writes of ``average_size`` +/- ``size_variation`` bytes."""

    average_size: int
    size_variation: int = 0
    delay_ms: float = 0
    direction: Direction = field(default=Direction.BOTH)

    kind: ClassVar[str] = "slice"

    def __post_init__(self) -> None:
        _whole("Slice", "average_size", self.average_size)
        _whole("Slice", "size_variation", self.size_variation)
        _at_least("Slice", "average_size", self.average_size, 1)
        _at_least("Slice", "size_variation", self.size_variation, 0)
        # Otherwise a piece could be empty or negative in size.
        if self.size_variation >= self.average_size:
            raise ValueError(
                "Slice.size_variation must be < average_size; "
                f"got {self.size_variation} with average_size {self.average_size}"
            )
        _at_least("Slice", "delay_ms", self.delay_ms, 0)
        _set_direction(self, self.direction)


@dataclass(frozen=True)
class Timeout:
    """Swallow every byte while active; with ``close_after_ms``, also close the connection."""

    close_after_ms: float | None = None
    direction: Direction = field(default=Direction.BOTH)

    kind: ClassVar[str] = "timeout"

    def __post_init__(self) -> None:
        if self.close_after_ms is not None:
            _at_least("Timeout", "close_after_ms", self.close_after_ms, 0)
        _set_direction(self, self.direction)


Fault = Latency | Bandwidth | Slice | Timeout
FAULT_TYPES: tuple[type[Fault], ...] = (Latency, Bandwidth, Slice, Timeout)
