"""Crafted stores for digest tests: mentions with chosen dates, touchpoints and scores.

The digest only reads the store, so its numbers are checked against rows whose scores are set
here by hand rather than by VADER: every expected figure in a test follows from these rows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.config import Config, parse_config
from monitor.sentiment import label_for
from monitor.store import PreparedMention, Store

_ids = itertools.count(1)


@dataclass
class StoreBuilder:
    tmp_path: Path
    businesses: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "Example Bakery", "sources": []}]
    )
    digest: dict[str, Any] = field(default_factory=dict)
    url: str | None = None

    def __post_init__(self) -> None:
        self.config: Config = parse_config(
            {
                "database": self.url or f"sqlite:///{self.tmp_path / 'digest.db'}",
                "output_dir": str(self.tmp_path / "digests"),
                "businesses": self.businesses,
                "digest": self.digest,
            },
            self.tmp_path / "business.yaml",
        )
        self.store = Store.open(self.config.database)
        self._sources: dict[tuple[str, str], tuple[int, int]] = {}

    def add(
        self,
        when: datetime,
        touchpoint: str,
        compound: float,
        *,
        business: str = "example-bakery",
        source: str = "reviews",
        kind: str = "review",
        text: str | None = None,
        rating: float | None = None,
        reply: str | None = None,
        first: bool = False,
        secondary: list[tuple[str, float]] | None = None,
        title: str | None = None,
    ) -> int:
        """Store one mention; returns its number (used in its text and URL)."""
        key = (business, source)
        if key not in self._sources:
            name = next(b["name"] for b in self.businesses if _key(b) == business)
            business_id = self.store.business_id(business, name)
            self._sources[key] = (
                business_id,
                self.store.source_id(business_id, source, "structured_data"),
            )
        business_id, source_id = self._sources[key]
        number = next(_ids)
        words = text or f"Mention {number} about {touchpoint}."
        label = label_for(compound)
        assignments = [
            {
                "touchpoint": touchpoint,
                "rank": 0,
                "confidence": 0.9,
                "compound": compound,
                "label": label,
                "evidence": [],
            }
        ]
        for rank, (other, other_compound) in enumerate(secondary or [], start=1):
            assignments.append(
                {
                    "touchpoint": other,
                    "rank": rank,
                    "confidence": 0.6,
                    "compound": other_compound,
                    "label": label_for(other_compound),
                    "evidence": [],
                }
            )
        self.store.save(
            [
                PreparedMention(
                    row={
                        "dedup_key": f"{number:064d}",
                        "content_hash": f"{number:064d}",
                        "business_id": business_id,
                        "source_id": source_id,
                        "run_id": None,
                        "kind": kind,
                        "external_id": f"test:{number}",
                        "url": f"https://reviews.example/r/{number}",
                        "title": title,
                        "text": words,
                        "author": f"Author {number}",
                        "rating": rating,
                        "rating_raw": None if rating is None else str(rating),
                        "published_at": when,
                        "published_offset_minutes": 0,
                        "collected_at": when,
                        "occurred_at": when,
                        "language": "en",
                        "owner_reply": reply,
                        "owner_reply_at": None,
                        "extra": {},
                    },
                    score={
                        "compound": compound,
                        "positive": None,
                        "neutral": None,
                        "negative": None,
                        "label": label,
                        "rating_disagrees": False,
                        "first_impression": first,
                        "scored_at": when,
                    },
                    sentences=[
                        {"position": 0, "text": words, "compound": compound, "label": label}
                    ],
                    assignments=assignments,
                )
            ]
        )
        return number


def _key(business: dict[str, Any]) -> str:
    import re

    return business.get("slug") or re.sub(r"[^a-z0-9]+", "-", business["name"].lower()).strip("-")
