"""The session protocol's contract as code, its checks, and the sessionlab command line."""

from contract import __version__

__all__ = ["__version__"]
