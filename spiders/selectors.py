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
from scrapy.http import TextResponse

from spiders.base import SourceSpider, pick

EMPLOYEE_PARTS = ("pros", "cons", "advice")


class SelectorSpider(SourceSpider):
    name = "selectors"
    source_type = "selectors"

    def parse(self, response: scrapy.http.Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            self.count("not_text", response.url, "not a text page")
            return
        rules = self.source.selectors
        assert rules is not None  # the config validator requires it for this source type
        is_xpath = rules.review.startswith(("/", "(", "./"))
        containers = response.xpath(rules.review) if is_xpath else response.css(rules.review)
        if not containers:
            self.count("page_without_reviews", response.url, "no reviews found on the page")
        dates: list[datetime] = []
        for position, container in enumerate(containers):
            review_id = pick(container, rules.id)
            # The site's own id, namespaced by source: stable even if the page's URL changes.
            external_id = f"{self.source.name}:{review_id}" if review_id else None
            published_at = self.date(response.url, pick(container, rules.date))
            if published_at is not None:
                dates.append(published_at)
            rating, rating_raw = self.rating(response.url, pick(container, rules.rating))
            reply_date = pick(container, self.source.owner_reply_date)
            common = {
                "title": pick(container, rules.title),
                "author": pick(container, rules.author),
                "published_at": published_at,
                "rating": rating,
                "rating_raw": rating_raw,
                "owner_reply": pick(container, self.source.owner_reply),
                "owner_reply_at": self.date(response.url, reply_date) if reply_date else None,
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
        yield from self.follow_next(response, dates, len(containers))

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
