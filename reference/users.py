"""User auth and sharing of the reference (profiles `auth`, X-AUTH-1, and `sharing`, X-SHARE-1).

What the gateway and the runtime agree on: the gateway authenticates a user by bearer token and
names the user to the runtime in one header; the runtime trusts that header because the internal
key authenticates the gateway. No header means user auth is off: every caller may do everything.
"""

import re
from collections.abc import Mapping
from typing import Literal

USER_HEADER = "X-Sessionlab-User"
# Names travel in an HTTP header and in share bodies: plain ASCII keeps them unambiguous there.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# Visible ASCII without spaces, so a token fits an Authorization header and a query string.
TOKEN = re.compile(r"^[\x21-\x7e]{1,512}$")

Access = Literal["owner", "reader", "none"]


def check_user_tokens(tokens: Mapping[str, str]) -> None:
    """Raise ValueError for a token or user name that cannot be used; never names a token."""
    for position, (token, user) in enumerate(tokens.items(), start=1):
        if not TOKEN.match(token):
            raise ValueError(
                f"token {position} (of user {user!r}) must be 1-512 visible ASCII characters"
            )
        if not USER_NAME.match(user):
            raise ValueError(
                f"user name {user!r} must be 1-64 of A-Z a-z 0-9 _ . @ -, starting alphanumeric"
            )
