"""Reviews published as schema.org data (JSON-LD, microdata, RDFa), as most review sites embed them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urldefrag

import extruct
import scrapy

from spiders.base import SourceSpider, pick

REVIEW_TYPES = {"Review", "EmployerReview", "CriticReview", "UserReview"}
SYNTAXES = ["json-ld", "microdata", "rdfa"]


def _types(node: dict[str, Any]) -> set[str]:
    found = node.get("@type", [])
    values = found if isinstance(found, list) else [found]
    return {str(v).rsplit("/", 1)[-1] for v in values}


def _first(value: Any) -> Any:
    while isinstance(value, list):
        value = value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    value = _first(value)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value") or value.get("text")
        value = _first(value)
    return str(value) if value not in (None, "") else None


def find_reviews(
    node: Any, reviewed: str | None = None
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every Review object in a structured-data tree, with the name of what it reviews."""
    if isinstance(node, list):
        for child in node:
            yield from find_reviews(child, reviewed)
        return
    if not isinstance(node, dict):
        return
    if _types(node) & REVIEW_TYPES:
        yield node, _text(node.get("itemReviewed")) or reviewed
        return
    name = _text(node.get("name")) or reviewed
    for key, child in node.items():
        if key in ("@context", "@type"):
            continue
        yield from find_reviews(child, name)


class StructuredDataSpider(SourceSpider):
    name = "structured_data"
    source_type = "structured_data"

    def parse(self, response: scrapy.http.Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, scrapy.http.TextResponse):
            self.logger.warning("not a text page: %s", response.url)
            self.crawler.stats.inc_value("monitor/not_text")
            return
        try:
            data = extruct.extract(
                response.text, base_url=response.url, syntaxes=SYNTAXES, uniform=True, errors="log"
            )
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            self.logger.warning("unreadable structured data on %s: %s", response.url, exc)
            self.crawler.stats.inc_value("monitor/invalid_structured_data")
            data = {}
        dates: list[datetime] = []
        found = 0
        for syntax in SYNTAXES:
            for review, reviewed in find_reviews(data.get(syntax, [])):
                record = self.review_record(response, review, reviewed, syntax)
                if record is None:
                    continue
                found += 1
                if record.published_at is not None:
                    dates.append(record.published_at)
                yield record
        if not found:
            self.logger.warning("no reviews found on %s", response.url)
            self.crawler.stats.inc_value("monitor/page_without_reviews")
        hrefs = response.css('link[rel~="next"]::attr(href), a[rel~="next"]::attr(href)').getall()
        hrefs += [h for h in [pick(response, self.source.next_page)] if h]
        yield from self.follow_next(response, hrefs, dates)

    def review_record(
        self,
        response: scrapy.http.Response,
        review: dict[str, Any],
        reviewed: str | None,
        syntax: str,
    ) -> Any:
        body = _text(review.get("reviewBody")) or _text(review.get("description")) or ""
        rating_node = _first(review.get("reviewRating")) or {}
        if not isinstance(rating_node, dict):
            rating_node = {"ratingValue": rating_node}
        rating, rating_raw = self.rating(
            _text(rating_node.get("ratingValue")),
            _text(rating_node.get("bestRating")),
            _text(rating_node.get("worstRating")),
        )
        review_id = _text(review.get("@id")) or _text(review.get("url"))
        url = review_id if review_id and review_id.startswith("http") else response.url
        return self.record(
            text=body,
            url=url,
            kind="review",
            external_id=review_id,
            title=_text(review.get("name")) or _text(review.get("headline")),
            author=_text(review.get("author")),
            published_at=self.date(_text(review.get("datePublished"))),
            rating=rating,
            rating_raw=rating_raw,
            owner_reply=self.owner_reply(response, review_id),
            extra={"syntax": syntax, "reviewed": reviewed, "page": response.url},
        )

    def owner_reply(self, response: scrapy.http.Response, review_id: str | None) -> str | None:
        """The business's public reply, shown in the page next to the review the @id points at."""
        if not self.source.owner_reply or not review_id:
            return None
        fragment = urldefrag(review_id).fragment
        if not fragment:
            return None
        container = response.xpath("//*[@id=$id]", id=fragment)
        return pick(container, self.source.owner_reply) if container else None
