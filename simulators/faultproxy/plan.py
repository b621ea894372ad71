"""What to do with one chunk under a set of faults: pure functions, no I/O, no clock."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .faults import Bandwidth, Fault, Latency, Slice, Timeout

# Pacing granularity: a paced write never carries more than this share of a second's
# budget, so a rate limit shows up as a steady trickle rather than rare large bursts.
BANDWIDTH_QUANTUM_S = 0.05


@dataclass(frozen=True)
class Step:
    """Wait ``wait_s`` seconds, then write ``data``."""

    wait_s: float
    data: bytes


@dataclass(frozen=True)
class ChunkPlan:
    """``hold_s`` counts from the chunk's arrival; each step's wait from the previous write."""

    hold_s: float
    steps: tuple[Step, ...]

    @property
    def dropped(self) -> bool:
        return not self.steps


def is_blackholed(faults: Iterable[Fault]) -> bool:
    return any(isinstance(f, Timeout) for f in faults)


def latency_s(fault: Latency, rng: random.Random) -> float:
    jitter = rng.uniform(-fault.jitter_ms, fault.jitter_ms) if fault.jitter_ms else 0.0
    return max(0.0, fault.ms + jitter) / 1000.0


def slice_sizes(length: int, fault: Slice, rng: random.Random) -> list[int]:
    """Piece sizes that add up to ``length``; the last piece takes the remainder."""
    sizes: list[int] = []
    left = length
    low = fault.average_size - fault.size_variation
    high = fault.average_size + fault.size_variation
    while left > 0:
        size = min(left, rng.randint(low, high))
        sizes.append(size)
        left -= size
    return sizes


def bandwidth_sizes(length: int, fault: Bandwidth) -> list[int]:
    quantum = max(1, int(fault.bytes_per_second * BANDWIDTH_QUANTUM_S))
    full, rest = divmod(length, quantum)
    return [quantum] * full + ([rest] if rest else [])


def _split(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    pieces = []
    start = 0
    for size in sizes:
        pieces.append(data[start : start + size])
        start += size
    return pieces


def _apply(step: Step, fault: Slice | Bandwidth, rng: random.Random) -> list[Step]:
    if isinstance(fault, Slice):
        pieces = _split(step.data, slice_sizes(len(step.data), fault, rng))
        gap = fault.delay_ms / 1000.0
        return [Step(step.wait_s if i == 0 else gap, p) for i, p in enumerate(pieces)]
    # A piece counts as delivered once its last byte has crossed the limited link,
    # hence the wait comes before the write: it gives a true lower bound on time.
    pieces = _split(step.data, bandwidth_sizes(len(step.data), fault))
    rate = fault.bytes_per_second
    return [Step((step.wait_s if i == 0 else 0.0) + len(p) / rate, p) for i, p in enumerate(pieces)]


def plan_chunk(data: bytes, faults: Sequence[Fault], rng: random.Random) -> ChunkPlan:
    """Apply ``faults`` in the order given (their order of addition) to one chunk."""
    if is_blackholed(faults):
        return ChunkPlan(0.0, ())
    hold = 0.0
    steps = [Step(0.0, data)]
    for fault in faults:
        if isinstance(fault, Latency):
            hold += latency_s(fault, rng)
        elif isinstance(fault, Slice | Bandwidth):
            steps = [out for step in steps for out in _apply(step, fault, rng)]
    return ChunkPlan(hold, tuple(steps))
