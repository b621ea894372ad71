"""The session protocol's contract as code, its checks, and the sessionlab command line."""

__version__ = "0.1.0"
