"""Export: the mentions behind a digest, as CSV or JSON, streamed (a year of mentions fits)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from sqlalchemy import and_, select

from monitor.config import Business
from monitor.digest import Period
from monitor.store import Business as BusinessRow
from monitor.store import Mention, MentionScore, Source, Store, TouchpointAssignment

COLUMNS = (
    "id",
    "occurred_at",
    "published_at",
    "source",
    "kind",
    "url",
    "author",
    "title",
    "text",
    "rating",
    "language",
    "compound",
    "label",
    "touchpoint",
    "touchpoint_compound",
    "first_impression",
    "rating_disagrees",
    "answered",
)


def mention_rows(store: Store, business: Business, period: Period) -> Iterator[dict[str, Any]]:
    """One dict per mention of the period, with its primary touchpoint; oldest first."""
    query = (
        select(
            Mention.id,
            Mention.occurred_at,
            Mention.published_at,
            Source.name.label("source"),
            Mention.kind,
            Mention.url,
            Mention.author,
            Mention.title,
            Mention.text,
            Mention.rating,
            Mention.language,
            MentionScore.compound,
            MentionScore.label,
            TouchpointAssignment.touchpoint,
            TouchpointAssignment.compound.label("touchpoint_compound"),
            MentionScore.first_impression,
            MentionScore.rating_disagrees,
            Mention.owner_reply.is_not(None).label("answered"),
        )
        .join(BusinessRow, BusinessRow.id == Mention.business_id)
        .join(Source, Source.id == Mention.source_id)
        .join(MentionScore, MentionScore.mention_id == Mention.id)
        .join(
            TouchpointAssignment,
            and_(TouchpointAssignment.mention_id == Mention.id, TouchpointAssignment.rank == 0),
        )
        .where(
            BusinessRow.key == business.key,
            Mention.occurred_at >= period.start,
            Mention.occurred_at < period.end,
        )
        .order_by(Mention.occurred_at, Mention.id)
        .execution_options(yield_per=1000)
    )
    with store.engine.connect() as connection:
        for row in connection.execute(query):
            yield {column: _plain(getattr(row, column)) for column in COLUMNS}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def write_csv(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def write_json(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    """A JSON array written row by row, so memory stays flat."""
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(row, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
