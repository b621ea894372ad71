"""Timestamps as the contract writes them: ISO 8601 in UTC, with the zone."""

from datetime import UTC, datetime


def utc_now() -> str:
    # Fixed width (microseconds always present) so that stored strings sort as times do.
    return datetime.now(UTC).isoformat(timespec="microseconds")
