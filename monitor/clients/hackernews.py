"""Hacker News stories and comments through the Algolia search API (``search_by_date``).

No key is needed (10,000 requests an hour). One query returns at most 1,000 hits, so when a
query is that busy the client narrows it to hits older than the oldest it has seen and goes on.
The cursor is the newest ``created_at_i`` stored, so a rerun asks only for newer hits.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from monitor.clients import Context
from monitor.clients.http import ApiError
from monitor.config import Business, HackerNewsSource
from monitor.names import mention_pattern, names_business, search_query
from monitor.records import MentionRecord

ITEM_URL = "https://news.ycombinator.com/item?id={id}"
HITS_PER_PAGE = 100
MAX_HITS_PER_QUERY = 1000  # Algolia's cap: pages past it come back empty


class Client:
    def __init__(self, source: HackerNewsSource, business: Business, context: Context) -> None:
        self.source = source
        self.business = business
        self.context = context
        self.since = int(context.cursor) if context.cursor else None
        self.newest: int | None = self.since
        self.pattern = mention_pattern(business.names)

    def next_cursor(self) -> str | None:
        return str(self.newest) if self.newest is not None else None

    def mentions(self) -> Iterator[MentionRecord]:
        for hit in self._hits():
            created = int(hit.get("created_at_i") or 0)
            self.newest = max(self.newest or 0, created)
            record = self._record(hit)
            if record is not None:
                yield record

    def _hits(self) -> Iterator[dict[str, Any]]:
        """Hits newest first, across pages and, past Algolia's cap, across date windows."""
        url = f"{self.source.api_url.rstrip('/')}/search_by_date"
        before: int | None = None
        pages = 0
        while pages < self.source.max_pages:
            filters = []
            if self.since is not None:
                filters.append(f"created_at_i>{self.since}")
            if before is not None:
                filters.append(f"created_at_i<{before}")
            oldest: int | None = None
            page = 0
            while pages < self.source.max_pages:
                params = {
                    "query": self.source.query or search_query(self.business.names),
                    "tags": "(" + ",".join(self.source.tags) + ")",
                    "hitsPerPage": HITS_PER_PAGE,
                    "page": page,
                }
                if filters:
                    params["numericFilters"] = ",".join(filters)
                body = self.context.api.get(url, params=params)
                pages += 1
                hits = body.get("hits") if isinstance(body, dict) else None
                if not isinstance(hits, list):
                    raise ApiError(f"GET {url}: the response has no 'hits' list")
                for hit in hits:
                    if not isinstance(hit, dict) or not hit.get("objectID"):
                        self.context.counts["malformed"] += 1
                        continue
                    created = int(hit.get("created_at_i") or 0)
                    oldest = created if oldest is None else min(oldest, created)
                    yield hit
                page += 1
                if page >= int(body.get("nbPages") or 0) or not hits:
                    break
            capped = int(body.get("nbHits") or 0) > MAX_HITS_PER_QUERY
            if not capped or oldest is None or page * HITS_PER_PAGE < MAX_HITS_PER_QUERY:
                return
            before = oldest  # the window was full: continue below its oldest hit

    def _record(self, hit: dict[str, Any]) -> MentionRecord | None:
        is_comment = "comment" in (hit.get("_tags") or [])
        title = hit.get("title") or hit.get("story_title")
        text = hit.get("comment_text") if is_comment else hit.get("story_text")
        if not text and not is_comment:
            text = hit.get("title")  # a link story: its title is all it says
        if not text:
            self.context.counts["deleted_or_empty"] += 1
            return None
        if not names_business(f"{title or ''}\n{text}", self.pattern, self.business.exclude):
            # Algolia matches loosely (prefixes, typos): keep only what names the business.
            self.context.counts["not_about_business"] += 1
            return None
        created = hit.get("created_at")
        return MentionRecord(
            business=self.business.key,
            source=self.source.name,
            text=text,
            url=ITEM_URL.format(id=hit["objectID"]),
            kind="comment" if is_comment else "post",
            external_id=f"hackernews:{hit['objectID']}",
            title=None if is_comment else title,
            author=hit.get("author"),
            published_at=datetime.fromisoformat(created.replace("Z", "+00:00"))
            if created
            else None,
            extra={
                "platform": "hackernews",
                "points": hit.get("points"),
                "story_id": hit.get("story_id"),
                "story_title": hit.get("story_title"),
                "link": hit.get("url"),
            },
        )
