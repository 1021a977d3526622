"""What every spider of ours shares: its source's config, and turning fields into a record."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import scrapy
from parsel import Selector, SelectorList
from scrapy.http import TextResponse

from monitor.config import Business, Config, Source, load_config
from monitor.dates import parse_date
from monitor.records import MentionRecord


class SourceSpider(scrapy.Spider):
    """A spider bound to one configured source of one business.

    ``monitor crawl`` passes the objects; ``scrapy crawl NAME -a config=FILE -a source=NAME``
    passes a config path and a source name (optionally ``-a business=KEY``).
    """

    source_type: str = ""
    config: Config
    business: Business
    source: Source
    known_until: datetime | None = None
    """Newest publication date (naive UTC) stored by the last complete crawl of this source;
    paging stops at a page whose reviews are all at least that old."""

    def __init__(
        self,
        config: Config | str | None = None,
        source: Source | str | None = None,
        business: Business | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if config is None or source is None:
            raise ValueError(f"{self.name}: pass -a config=FILE -a source=NAME")
        self.config = load_config(config) if isinstance(config, str) else config
        self.business, self.source = self._find_source(business, source)
        if self.source.type != self.source_type:
            raise ValueError(
                f"source {self.source.name!r} is of type {self.source.type!r}, "
                f"not {self.source_type!r}"
            )
        self.start_urls = list(self.source.start_urls)

    def _find_source(
        self, business: Business | str | None, source: Source | str
    ) -> tuple[Business, Source]:
        if isinstance(source, Source) and isinstance(business, Business):
            return business, source
        wanted = source.name if isinstance(source, Source) else source
        for candidate in self.config.businesses:
            if business and not isinstance(business, Business) and candidate.key != business:
                continue
            for configured in candidate.sources:
                if configured.name == wanted:
                    return candidate, configured
        raise ValueError(f"no source named {wanted!r} in {self.config.path}")

    def page_number(self, response: scrapy.http.Response) -> int:
        return int(response.meta.get("page", 1))

    def follow_next(
        self, response: scrapy.http.Response, hrefs: Iterable[str], newest_on_page: list[datetime]
    ) -> Iterable[scrapy.Request]:
        """The next page, unless the page limit is reached or the page held only known reviews."""
        page = self.page_number(response)
        if page >= self.source.max_pages:
            self.crawler.stats.inc_value("monitor/paging_stopped/max_pages")
            return
        newest = max((_utc(d) for d in newest_on_page), default=None)
        if self.known_until is not None and newest is not None and newest <= self.known_until:
            self.logger.info("stopping at %s: every review on it is already stored", response.url)
            self.crawler.stats.inc_value("monitor/paging_stopped/known")
            return
        for href in hrefs:
            if href and href.strip():
                yield response.follow(href.strip(), meta={"page": page + 1})
                return

    def record(self, **fields: Any) -> MentionRecord:
        return MentionRecord(business=self.business.key, source=self.source.name, **fields)

    def rating(
        self, value: Any, best: Any = None, worst: Any = None
    ) -> tuple[float | None, str | None]:
        """A rating on the 0–1 scale from a value and its scale (the source's, unless given).

        A value outside its scale is returned as is (> 1 or < 0) so the pipeline drops and counts it.
        """
        if value is None or str(value).strip() == "":
            return None, None
        raw = str(value).strip()
        low, high = self.source.rating_scale
        try:
            number = float(raw.replace(",", "."))
            if best not in (None, ""):
                high = float(best)
            if worst not in (None, ""):
                low = float(worst)
        except (TypeError, ValueError):
            self.crawler.stats.inc_value("monitor/unparsable_rating")
            return None, raw
        if high <= low:
            return None, raw
        return round((number - low) / (high - low), 4), raw

    def date(self, value: Any) -> datetime | None:
        if value in (None, ""):
            return None
        parsed = parse_date(str(value))
        if parsed is None:
            self.crawler.stats.inc_value("monitor/unparsable_date")
        return parsed


def _utc(moment: datetime) -> datetime:
    """Naive UTC, as the store keeps dates (a naive date from a page is taken as UTC)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def pick(node: Selector | SelectorList[Selector] | TextResponse, query: str | None) -> str | None:
    """Text of a CSS or XPath query inside ``node``: '::text'/'::attr' as given, else all text."""
    if not query:
        return None
    is_xpath = query.startswith(("/", "(", "./"))
    found = node.xpath(query) if is_xpath else node.css(query)
    if not found:
        return None
    if is_xpath or "::" in query:
        values = found.getall()
    else:
        values = found.xpath(".//text()").getall()
    text = " ".join(v.strip() for v in values if v and v.strip())
    return text or None
