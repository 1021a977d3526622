"""Reviews on sites without structured data, read with CSS/XPath selectors from the config.

Adding such a site is a config change: a ``selectors`` block naming the review container and the
fields inside it. The ``job_board`` profile keeps an employee review's pros, cons and advice apart
so each gets its own sentiment.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import scrapy

from spiders.base import SourceSpider, pick

EMPLOYEE_PARTS = ("pros", "cons", "advice")


class SelectorSpider(SourceSpider):
    name = "selectors"
    source_type = "selectors"

    def parse(self, response: scrapy.http.Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, scrapy.http.TextResponse):
            self.logger.warning("not a text page: %s", response.url)
            self.crawler.stats.inc_value("monitor/not_text")
            return
        rules = self.source.selectors
        assert rules is not None  # the config validator requires it for this source type
        containers = (
            response.xpath(rules.review)
            if rules.review.startswith(("/", "("))
            else response.css(rules.review)
        )
        if not containers:
            self.logger.warning("no reviews found on %s", response.url)
            self.crawler.stats.inc_value("monitor/page_without_reviews")
        dates: list[datetime] = []
        for position, container in enumerate(containers):
            review_id = pick(container, rules.id)
            # The site's own id, namespaced by source: stable even if the page's URL changes.
            external_id = f"{self.source.name}:{review_id}" if review_id else None
            published_at = self.date(pick(container, rules.date))
            if published_at is not None:
                dates.append(published_at)
            rating, rating_raw = self.rating(pick(container, rules.rating))
            common = {
                "title": pick(container, rules.title),
                "author": pick(container, rules.author),
                "published_at": published_at,
                "rating": rating,
                "rating_raw": rating_raw,
                "owner_reply": pick(container, self.source.owner_reply),
                "extra": {"page": response.url, "position": position},
            }
            if self.source.profile == "job_board":
                yield from self.employee_records(container, response.url, external_id, common)
            else:
                yield self.record(
                    text=pick(container, rules.text) or "",
                    url=response.url,
                    kind="review",
                    external_id=external_id,
                    **common,
                )
        hrefs = [h for h in [pick(response, self.source.next_page)] if h]
        hrefs += response.css('link[rel~="next"]::attr(href), a[rel~="next"]::attr(href)').getall()
        yield from self.follow_next(response, hrefs, dates)

    def employee_records(
        self, container: Any, page_url: str, external_id: str | None, common: dict[str, Any]
    ) -> Iterator[Any]:
        """One record per part (pros, cons, advice), or one for a single-text review."""
        rules = self.source.selectors
        assert rules is not None
        parts = {part: pick(container, getattr(rules, part)) for part in EMPLOYEE_PARTS}
        if not any(parts.values()):
            parts = {"review": pick(container, rules.text)}
        for part, text in parts.items():
            if not text:
                continue
            yield self.record(
                text=text,
                url=page_url,
                kind=f"employee_{part}",
                external_id=f"{external_id}/{part}" if external_id else None,
                **common,
            )
