"""Loopback ports for the services sessionlab launches."""

import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
# Where the kernel picks ports for outgoing connections and for binds to port 0, when
# /proc does not say: Linux's default.
EPHEMERAL_DEFAULT = (32768, 60999)
LOWEST = 10000


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands out by itself on this machine."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return EPHEMERAL_DEFAULT


def _candidates() -> list[int]:
    """Ports the kernel does not hand out by itself, in a random order.

    A port chosen by binding port 0 lies in the ephemeral range, where every outgoing connection
    on the machine may take it before the service binds it; a port below that range is taken
    only by a program that asks for it by number.
    """
    low, _ = ephemeral_range()
    ports = list(range(LOWEST, low)) if low - LOWEST >= 1000 else []
    random.shuffle(ports)
    return ports


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free on 127.0.0.1 a moment ago.

    All sockets stay bound until every port is chosen, so none is handed out twice. Another
    program may still take one before the service binds it; the service then fails to start and
    says so in its log, which the start error quotes.
    """
    sockets: list[socket.socket] = []
    candidates = iter(_candidates())
    try:
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            port = next(candidates, 0)
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
