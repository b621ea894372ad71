"""Targets: an implementation under test, where it is, and what sessionlab may do to it."""

from conformance.targets.base import Capability, Endpoints, Service, Target, TargetError
from conformance.targets.logs import LogBuffer, LogSource

__all__ = [
    "Capability",
    "Endpoints",
    "LogBuffer",
    "LogSource",
    "Service",
    "Target",
    "TargetError",
]
