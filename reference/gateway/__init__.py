"""The reference Gateway of the session protocol."""

from reference.gateway.app import create_app

__all__ = ["create_app"]
