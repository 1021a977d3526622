"""Dates as sources write them (ISO 8601, RFC 822, "12 Oct 2026", "3 days ago") → datetime.

A time zone the source states is kept (an aware datetime); a date without one stays naive and is
taken as UTC by the store.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

import dateparser

_DATEPARSER_SETTINGS = {"PREFER_DATES_FROM": "past", "STRICT_PARSING": False}


def parse_date(text: str, now: datetime | None = None) -> datetime | None:
    """Parse a date string; ``None`` when it is not a date at all."""
    value = text.strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        pass
    settings = dict(_DATEPARSER_SETTINGS)
    if now is not None:
        settings["RELATIVE_BASE"] = now
    return dateparser.parse(value, settings=settings)
