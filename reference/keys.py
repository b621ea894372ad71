"""Random keys for services and runs."""

import secrets


def random_key() -> str:
    """A fresh key of 192 bits, in hex: it never starts with `-`, which a command line would take
    for an option when the key is passed as `--internal-key KEY`."""
    return secrets.token_hex(24)
