"""A fault-injecting TCP proxy for putting real network trouble between two parties.

Start a :class:`FaultProxy` in front of a server, point the client at ``proxy.url()``,
then add faults (:class:`Latency`, :class:`Bandwidth`, :class:`Slice`, :class:`Timeout`)
or act on the connections (``down``/``up``, ``cut``, ``reset``). See docs/fault-proxy.md.
"""

from .faults import Bandwidth, Direction, Fault, Latency, Slice, Timeout
from .proxy import FaultProxy

__all__ = [
    "Bandwidth",
    "Direction",
    "Fault",
    "FaultProxy",
    "Latency",
    "Slice",
    "Timeout",
]
