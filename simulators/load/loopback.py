"""Load goes to this machine unless the user says otherwise: a load test sent to someone else's
server by a typo is an attack on it."""

import ipaddress
import socket
from urllib.parse import urlsplit


class RemoteTargetError(ValueError):
    """The target is not on loopback and `--allow-remote` was not given."""


def loopback_only(url: str) -> None:
    """Raise RemoteTargetError unless every address `url`'s host resolves to is a loopback one."""
    host = urlsplit(url).hostname
    if host is None:
        raise RemoteTargetError(f"{url} names no host")
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise RemoteTargetError(f"{url}: {host} does not resolve ({exc.strerror})") from None
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if remote:
        raise RemoteTargetError(
            f"{url} is not on this machine ({host} is {', '.join(remote)}): a load test against "
            "another machine needs --allow-remote, and its owner's consent"
        )
