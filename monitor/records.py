"""The one record type every collector yields: a spider's review and a platform's post alike.

Collectors fill in what the source shows; the pipeline normalises, keys, scores and stores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class MentionRecord:
    """One public mention of a business, as a collector found it (text still raw)."""

    business: str
    """The business's key (``Business.key`` in the config)."""
    source: str
    """The configured source's name."""
    text: str
    url: str
    kind: str = "review"
    """review, post, comment, employee_pros, employee_cons, employee_advice, employee_review …"""
    external_id: str | None = None
    """The platform's own identifier, namespaced (e.g. a review's @id URL, ``reddit:t1_abc``)."""
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    rating: float | None = None
    """The rating normalised to 0–1 (worst → 0, best → 1), when the source has one."""
    rating_raw: str | None = None
    owner_reply: str | None = None
    owner_reply_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
