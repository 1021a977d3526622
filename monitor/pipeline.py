"""The one item pipeline every collected mention goes through: normalise → key → language → store.

Spiders reach it as a Scrapy item pipeline (``MentionPipeline``); platform clients call ``Ingest``
directly. Known mentions are recognised by key, so a rerun costs a lookup; a batch is stored in
one transaction, so a killed run loses at most one batch. Judging what was stored (VADER and
touchpoints) is the scoring pass's work (``monitor.scoring``), which keeps collecting fast and
lets scoring run on every core, or every worker, after it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.normalise import clean_text, content_hash, dedup_key, detect_language
from monitor.records import MentionRecord
from monitor.store import Store, utc_now
from monitor.touchpoints import Taxonomy

log = logging.getLogger(__name__)

# Mentions stored per transaction: large enough for bulk-insert speed, small enough that a
# killed run loses little and holds SQLite's write lock only briefly.
BATCH_SIZE = 5000
# …and at least this often (seconds) while mentions trickle in, so a slow crawl killed half-way
# has stored what it had found.
BATCH_SECONDS = 5.0
MAX_TEXT_CHARS = 100_000


class DroppedMention(Exception):
    """A record that cannot become a mention; ``reason`` is counted as ``drop_item/<reason>``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _as_utc(moment: datetime | None) -> tuple[datetime | None, int | None]:
    """A naive UTC datetime for the database, and the source's UTC offset in minutes."""
    if moment is None:
        return None, None
    if moment.tzinfo is None:
        return moment, None
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else None
    return moment.astimezone(UTC).replace(tzinfo=None), minutes


def hash_author(author: str) -> str:
    """A stable pseudonym: the same name (and salt) always gives the same one."""
    salt = os.environ.get("MONITOR_AUTHOR_SALT", "")
    return "author-" + hashlib.sha256(f"{salt}\x1f{author}".encode()).hexdigest()[:16]


def prepare(
    record: MentionRecord, taxonomy: Taxonomy, hash_authors: bool = False
) -> tuple[str, dict[str, Any]]:
    """Normalise a record into mention columns; returns its key. Raises DroppedMention."""
    text = clean_text(record.text)
    if not text:
        raise DroppedMention("empty_text", record.url)
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
    published_at, offset = _as_utc(record.published_at)
    reply_at, _ = _as_utc(record.owner_reply_at)
    rating = record.rating
    if rating is not None and not 0.0 <= rating <= 1.0:
        raise DroppedMention("rating_out_of_scale", f"{record.url} rating={record.rating_raw}")
    key = dedup_key(record.business, record.external_id, text, record.author, published_at)
    collected_at = utc_now()
    row = {
        "dedup_key": key,
        "content_hash": content_hash(text),
        "kind": record.kind,
        "external_id": record.external_id,
        "url": record.url,
        "title": clean_text(record.title) or None,
        "text": text,
        "author": _author(record.author, hash_authors),
        "rating": rating,
        "rating_raw": record.rating_raw,
        "published_at": published_at,
        "published_offset_minutes": offset,
        "collected_at": collected_at,
        "occurred_at": published_at or collected_at,
        "language": detect_language(text),
        "owner_reply": clean_text(record.owner_reply) or None,
        "owner_reply_at": reply_at,
        "extra": record.extra,
    }
    return key, row


def _author(raw: str | None, hashed: bool) -> str | None:
    author = clean_text(raw) or None
    return hash_author(author) if author and hashed else author


@dataclass
class Ingest:
    """Batches the mentions of one source into the store, counting what happened to each."""

    store: Store
    taxonomy: Taxonomy
    business_id: int
    source_id: int
    run_id: int | None = None
    batch_size: int = BATCH_SIZE
    hash_authors: bool = False
    batch_seconds: float = BATCH_SECONDS
    counts: Counter[str] = field(default_factory=Counter)
    after_flush: Callable[[], None] | None = None
    """Called once a batch is committed (a distributed worker then releases its pages' leases)."""
    _pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    _oldest: float = 0.0

    def add(self, record: MentionRecord) -> str:
        """Queue one record; returns ``queued``, ``duplicate`` or raises DroppedMention."""
        try:
            key, row = prepare(record, self.taxonomy, self.hash_authors)
        except DroppedMention as dropped:
            self.counts[f"dropped/{dropped.reason}"] += 1
            raise
        if key in self._pending:
            self.counts["duplicate"] += 1
            return "duplicate"
        row.update(business_id=self.business_id, source_id=self.source_id, run_id=self.run_id)
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending[key] = row
        if (
            len(self._pending) >= self.batch_size
            or time.monotonic() - self._oldest >= self.batch_seconds
        ):
            self.flush()
        return "queued"

    def add_all(self, records: Iterable[MentionRecord]) -> None:
        for record in records:
            try:
                self.add(record)
            except DroppedMention as dropped:
                log.warning("dropped a mention (%s)", dropped)

    def flush(self) -> None:
        """Store what is new in the batch, in one transaction."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        known = self.store.known_keys(pending)
        fresh = [row for key, row in pending.items() if key not in known]
        new = self.store.save_mentions(fresh)
        self.counts["new"] += new
        # Known before the batch, or stored meanwhile by an overlapping run or another worker.
        self.counts["duplicate"] += len(pending) - new
        if self.after_flush is not None:
            self.after_flush()

    @property
    def pending(self) -> int:
        """Mentions queued and not yet committed."""
        return len(self._pending)


class MentionPipeline:
    """Scrapy item pipeline: hands every ``MentionRecord`` a spider yields to ``Ingest``.

    The spider carries its context (``store``, ``taxonomy``, ``business_id``, ``source_id``,
    ``run_id``) as attributes set by ``monitor.crawl``; counts land in the crawl stats.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.ingest: Ingest | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> MentionPipeline:
        return cls(crawler)

    def open_spider(self, spider: Any = None) -> None:
        spider = spider or self.crawler.spider
        if not hasattr(spider, "store"):
            return  # a bare `scrapy crawl` with no store: items go to feeds/logs only
        self.ingest = Ingest(
            store=spider.store,
            taxonomy=spider.taxonomy,
            business_id=spider.business_id,
            source_id=spider.source_id,
            run_id=getattr(spider, "run_id", None),
            hash_authors=spider.config.privacy.hash_authors,
        )

    def process_item(self, item: Any, spider: Any = None) -> Any:
        if self.ingest is None or not isinstance(item, MentionRecord):
            return item
        from scrapy.exceptions import DropItem

        try:
            outcome = self.ingest.add(item)
        except DroppedMention as dropped:
            self.stats.inc_value(f"drop_item/{dropped.reason}")
            raise DropItem(str(dropped)) from None
        self.stats.inc_value(f"monitor/{outcome}")
        return item

    def close_spider(self, spider: Any = None) -> None:
        if self.ingest is None:
            return
        self.ingest.flush()
        self.stats.set_value("monitor/new", self.ingest.counts["new"])
        self.stats.set_value("monitor/duplicate", self.ingest.counts["duplicate"])
