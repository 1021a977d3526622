"""RSS and Atom feeds (news, blogs, forums): keep the entries that name the business."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import feedparser
import scrapy

from monitor.names import mention_pattern, names_business
from spiders.base import SourceSpider


class FeedSpider(SourceSpider):
    name = "feed"
    source_type = "feed"

    def parse(self, response: scrapy.http.Response, **kwargs: Any) -> Iterator[Any]:
        parsed = feedparser.parse(response.body, response_headers=dict(_headers(response)))
        if parsed.bozo and not parsed.entries:
            self.logger.warning(
                "unreadable feed at %s: %s", response.url, parsed.get("bozo_exception")
            )
            self.crawler.stats.inc_value("monitor/invalid_feed")
            return
        pattern = mention_pattern(self.business.names)
        for entry in parsed.entries:
            title = entry.get("title", "")
            content = entry.get("content", [{}])[0].get("value") or entry.get("summary", "")
            if not names_business(f"{title}\n{content}", pattern, self.business.exclude):
                assert self.crawler.stats is not None
                self.crawler.stats.inc_value("monitor/feed_entry_not_about_business")
                continue
            yield self.record(
                text=content or title,
                url=entry.get("link") or response.url,
                kind="post",
                external_id=entry.get("id") or entry.get("link"),
                title=title or None,
                author=entry.get("author"),
                published_at=self.date(
                    response.url, entry.get("published") or entry.get("updated")
                ),
                extra={"feed": response.url},
            )


def _headers(response: scrapy.http.Response) -> Iterator[tuple[str, str]]:
    for key, values in response.headers.items():
        yield key.decode("latin-1").lower(), b", ".join(values).decode("latin-1")
