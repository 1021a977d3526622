"""Reviews published as schema.org data (JSON-LD, microdata, RDFa), as most review sites embed them.

Each JSON-LD block is read on its own, so one broken block (a trailing comma, a stray HTML comment)
costs only itself; microdata and RDFa are read with extruct, and only on pages that carry them.
Aggregate ratings (``AggregateRating``, ``EmployerAggregateRating``) are not mentions: the newest
one seen is kept in the crawl stats, and so in the run's record of the source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urldefrag

import extruct
import scrapy
from scrapy.http import TextResponse

from spiders.base import SourceSpider, pick

REVIEW_TYPES = {"Review", "EmployerReview", "CriticReview", "UserReview"}
AGGREGATE_TYPES = {"AggregateRating", "EmployerAggregateRating"}
_HAS_MICRODATA = re.compile(rb"\sitemscope\b|\sitemtype=", re.I)
_HAS_RDFA = re.compile(rb"\stypeof=|\sproperty=\"(schema:|http://schema\.org)", re.I)


def _types(node: dict[str, Any]) -> set[str]:
    found = node.get("@type", [])
    values = found if isinstance(found, list) else [found]
    return {str(v).rsplit("/", 1)[-1].rsplit(":", 1)[-1] for v in values}


def _first(value: Any) -> Any:
    while isinstance(value, list):
        value = value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    """The plain text of a property: a string, or the name/value of an object holding it."""
    value = _first(value)
    for _ in range(4):  # {"name": [{"@value": "Colin"}]} unwraps in two steps
        if not isinstance(value, dict):
            break
        value = _first(value.get("name") or value.get("@value") or value.get("text"))
    if isinstance(value, dict) or value in (None, ""):
        return None
    return str(value)


def walk(node: Any, reviewed: str | None = None) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every Review and aggregate rating in a structured-data tree, with what it is about."""
    if isinstance(node, list):
        for child in node:
            yield from walk(child, reviewed)
        return
    if not isinstance(node, dict):
        return
    types = _types(node)
    about = _text(node.get("itemReviewed")) or reviewed
    if types & (REVIEW_TYPES | AGGREGATE_TYPES):
        yield node, about
        if types & REVIEW_TYPES:
            return  # a review's own sub-objects (its rating, its author) are not reviews
    name = _text(node.get("name")) if "name" in node and not types & AGGREGATE_TYPES else None
    for key, child in node.items():
        if key not in ("@context", "@type"):
            yield from walk(child, name or reviewed)


_SCHEMA_PREFIXES = ("https://schema.org/", "http://schema.org/")
# Properties whose @id references are followed when RDFa's flat graph is put back together.
_FOLLOWED = ("author", "reviewRating", "itemReviewed")


def _short(key: str) -> str:
    for prefix in _SCHEMA_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def regroup_rdfa(nodes: list[Any]) -> list[Any]:
    """extruct gives RDFa as a flat graph with full IRIs: shorten them and nest what a review
    points at (its author, its rating), so it reads like JSON-LD."""
    by_id: dict[str, dict[str, Any]] = {}
    for node in nodes:
        if isinstance(node, dict):
            short = {_short(k): v for k, v in node.items()}
            if "@type" in short:
                types = short["@type"] if isinstance(short["@type"], list) else [short["@type"]]
                short["@type"] = [_short(str(t)) for t in types]
            by_id[str(node.get("@id"))] = short
    for node in by_id.values():
        for key in _FOLLOWED:
            values = node.get(key)
            if isinstance(values, list):
                node[key] = [
                    by_id.get(v["@id"], v) if isinstance(v, dict) and set(v) == {"@id"} else v
                    for v in values
                ]
    return list(by_id.values())


def json_ld_blocks(spider: SourceSpider, response: TextResponse) -> list[Any]:
    """The JSON-LD blocks of a page that parse; each one that does not is counted."""
    blocks = []
    for raw in response.xpath('//script[@type="application/ld+json"]/text()').getall():
        text = raw.strip().removeprefix("<!--").removesuffix("-->").strip()
        if not text:
            continue
        try:
            blocks.append(json.loads(text))
        except json.JSONDecodeError as exc:
            spider.count(
                "invalid_json_ld", response.url, "a JSON-LD block is not valid JSON: %s", exc
            )
    return blocks


class StructuredDataSpider(SourceSpider):
    name = "structured_data"
    source_type = "structured_data"

    def parse(self, response: scrapy.http.Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            self.count("not_text", response.url, "not a text page")
            return
        found: list[tuple[str, Any, str | None]] = [
            ("json-ld", node, about)
            for block in json_ld_blocks(self, response)
            for node, about in walk(block)
        ]
        for syntax, wanted in (("microdata", _HAS_MICRODATA), ("rdfa", _HAS_RDFA)):
            if wanted.search(response.body):
                found += [(syntax, n, a) for n, a in walk(self.extract(response, syntax))]
        dates: list[datetime] = []
        reviews = 0
        for syntax, node, about in found:
            if _types(node) & AGGREGATE_TYPES:
                self.keep_aggregate(node)
                continue
            record = self.review_record(response, node, about, syntax)
            reviews += 1
            if record.published_at is not None:
                dates.append(record.published_at)
            yield record
        if not reviews:
            self.count("page_without_reviews", response.url, "no reviews found on the page")
        yield from self.follow_next(response, dates, reviews)

    def extract(self, response: TextResponse, syntax: str) -> list[Any]:
        try:
            data = extruct.extract(
                response.text, base_url=response.url, syntaxes=[syntax], uniform=True
            )
        except Exception as exc:  # extruct surfaces lxml's and rdflib's own errors unwrapped
            self.count(f"invalid_{syntax}", response.url, "%s could not be read: %s", syntax, exc)
            return []
        found = list(data.get(syntax, []))
        return regroup_rdfa(found) if syntax == "rdfa" else found

    def keep_aggregate(self, node: dict[str, Any]) -> None:
        stats = self.crawler.stats
        assert stats is not None
        stats.set_value("monitor/aggregate_rating/value", _text(node.get("ratingValue")))
        count = _text(node.get("reviewCount")) or _text(node.get("ratingCount"))
        stats.set_value("monitor/aggregate_rating/count", count)
        stats.set_value("monitor/aggregate_rating/best", _text(node.get("bestRating")) or "5")

    def review_record(
        self, response: TextResponse, review: dict[str, Any], reviewed: str | None, syntax: str
    ) -> Any:
        body = _text(review.get("reviewBody")) or _text(review.get("description")) or ""
        rating_node = _first(review.get("reviewRating")) or {}
        if not isinstance(rating_node, dict):
            rating_node = {"ratingValue": rating_node}
        rating, rating_raw = self.rating(
            response.url,
            _text(rating_node.get("ratingValue")),
            _text(rating_node.get("bestRating")),
            _text(rating_node.get("worstRating")),
        )
        review_id = _text(review.get("@id")) or _text(review.get("url"))
        reply_text, reply_date = self.owner_reply(response, review_id)
        return self.record(
            text=body,
            url=review_id if review_id and review_id.startswith("http") else response.url,
            kind="employee_review" if self.source.profile == "job_board" else "review",
            external_id=review_id,
            title=_text(review.get("name")) or _text(review.get("headline")),
            author=_text(review.get("author")),
            published_at=self.date(response.url, _text(review.get("datePublished"))),
            rating=rating,
            rating_raw=rating_raw,
            owner_reply=reply_text,
            owner_reply_at=reply_date,
            extra={"syntax": syntax, "reviewed": reviewed, "page": response.url},
        )

    def owner_reply(
        self, response: TextResponse, review_id: str | None
    ) -> tuple[str | None, datetime | None]:
        """The business's public reply, shown in the page next to the review the @id points at."""
        if not self.source.owner_reply or not review_id:
            return None, None
        # "#r-3603" names the element; "#/schema/Review/rv-100" (as large sites write it) names it
        # in its last segment.
        fragment = urldefrag(review_id).fragment
        candidates = [c for c in dict.fromkeys([fragment, fragment.rsplit("/", 1)[-1]]) if c]
        container = None
        for candidate in candidates:
            container = response.xpath("//*[@id=$id]", id=candidate)
            if container:
                break
        if not container:
            return None, None
        text = pick(container, self.source.owner_reply)
        if not text:
            return None, None
        when = pick(container, self.source.owner_reply_date)
        return text, self.date(response.url, when) if when else None
