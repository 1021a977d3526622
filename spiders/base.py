"""What every spider of ours shares: its source's config, paging, and turning fields into a record.

Nothing here opens the database: what is already stored reaches a spider only as ``known_until``.
Every problem with a page (an error status, a redirect loop, a page too large, a review without
a date or with a rating off its scale) is logged with its URL and counted in the crawl stats under
``monitor/…``, and the crawl goes on.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import scrapy
from parsel import Selector, SelectorList
from scrapy.http import TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from monitor.config import Business, Config, SpiderSource, load_config
from monitor.dates import parse_date
from monitor.records import MentionRecord

# Link texts that mean "the next page of reviews" on sites that do not mark it with rel=next.
_NEXT_TEXT = re.compile(
    r"^\s*(next(\s+page)?|older(\s+reviews)?|more reviews|›|»|→|>)\s*[›»→>]?\s*$", re.I
)


class SourceSpider(scrapy.Spider):
    """A spider bound to one configured source of one business.

    ``monitor crawl`` passes the objects; ``scrapy crawl NAME -a config=FILE -a source=NAME``
    passes a config path and a source name (optionally ``-a business=KEY``).
    """

    source_type: str = ""
    config: Config
    business: Business
    source: SpiderSource
    known_until: datetime | None = None
    """Newest publication date (naive UTC) stored by the last complete crawl of this source;
    paging stops after the first page that reaches back to it."""

    def __init__(
        self,
        config: Config | str | None = None,
        source: SpiderSource | str | None = None,
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
        self, business: Business | str | None, source: SpiderSource | str
    ) -> tuple[Business, SpiderSource]:
        if isinstance(source, SpiderSource) and isinstance(business, Business):
            return business, source
        wanted = source.name if isinstance(source, SpiderSource) else source
        for candidate in self.config.businesses:
            if business and not isinstance(business, Business) and candidate.key != business:
                continue
            for configured in candidate.sources:
                if configured.name == wanted and isinstance(configured, SpiderSource):
                    return candidate, configured
        raise ValueError(f"no source named {wanted!r} in {self.config.path}")

    def count(self, key: str, url: str, message: str, *args: Any) -> None:
        """Log a problem with its URL and count it as ``monitor/<key>``."""
        self.logger.warning(f"{message} (%s)", *args, url)
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(f"monitor/{key}")

    async def start(self) -> AsyncIterator[Any]:
        for url in self.start_urls:
            # dont_filter, as Scrapy does for start URLs: a redirect loop then ends in an error
            # we count, instead of vanishing into the duplicate filter.
            yield scrapy.Request(
                url, callback=self.parse, errback=self.request_failed, dont_filter=True
            )

    def request_failed(self, failure: Failure) -> None:
        """Every request that did not give a page: counted by reason, logged with its URL."""
        request = failure.request  # type: ignore[attr-defined]
        error = failure.value
        if isinstance(error, HttpError):
            reason, detail = f"http_{error.response.status}", f"HTTP {error.response.status}"
        else:
            text = str(error)
            if "max redirections" in text.lower():
                reason, detail = "redirect_loop", "too many redirects"
            elif "maxsize" in text.lower() or "larger than download max size" in text.lower():
                reason, detail = "page_too_large", text
            elif "timeout" in type(error).__name__.lower() or "timed out" in text.lower():
                reason, detail = "timeout", text
            elif "Forbidden by robots.txt" in text:
                reason, detail = "robots_txt", "forbidden by robots.txt"
            else:
                reason, detail = type(error).__name__, text or type(error).__name__
        asked_for = request.meta.get("redirect_urls", [request.url])[0]
        if asked_for != request.url:
            detail += f" (asked for {asked_for})"
        self.count(f"request_failed/{reason}", request.url, "could not fetch a page: %s", detail)

    def page_number(self, response: scrapy.http.Response) -> int:
        return int(response.meta.get("page", 1))

    def next_page_hrefs(self, response: TextResponse) -> list[str]:
        """The next page's link: the configured selector, rel=next, or a "Next page" link."""
        hrefs = [h for h in [pick(response, self.source.next_page)] if h]
        hrefs += response.css('link[rel~="next"]::attr(href), a[rel~="next"]::attr(href)').getall()
        for link in response.xpath("//a[@href]"):
            label = " ".join(link.xpath(".//text()").getall()) or link.attrib.get("aria-label", "")
            if _NEXT_TEXT.match(label):
                hrefs.append(link.attrib["href"])
        if self.source.page_url:
            hrefs.append(self.source.page_url.format(page=self.page_number(response) + 1))
        return hrefs

    def follow_next(
        self, response: TextResponse, dates_on_page: list[datetime], found: int
    ) -> Iterable[scrapy.Request]:
        """The next page, unless the page limit is reached or the page held only known reviews."""
        page = self.page_number(response)
        if found == 0:
            return  # an empty page ends numbered paging (and there is nothing to page past)
        if page >= self.source.max_pages:
            # The configured limit is a normal stop, not a problem: counted, logged at INFO.
            self.logger.info("page limit %d reached at %s", page, response.url)
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("monitor/paging_stopped/max_pages")
            return
        # Review pages list the newest first, so a review as old as the newest one stored means
        # everything after it is stored already.
        oldest = min((_utc(d) for d in dates_on_page), default=None)
        if self.known_until is not None and oldest is not None and oldest <= self.known_until:
            self.logger.info("stopping at %s: it reaches reviews already stored", response.url)
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("monitor/paging_stopped/known")
            return
        for href in self.next_page_hrefs(response):
            if href and href.strip() and not href.startswith(("#", "javascript:")):
                yield response.follow(
                    href.strip(),
                    callback=self.parse,
                    errback=self.request_failed,
                    meta={"page": page + 1},
                )
                return

    def record(self, **fields: Any) -> MentionRecord:
        return MentionRecord(business=self.business.key, source=self.source.name, **fields)

    def rating(
        self, url: str, value: Any, best: Any = None, worst: Any = None
    ) -> tuple[float | None, str | None]:
        """A rating on the 0–1 scale from a value and its scale (the source's, unless given).

        A value that is not a number, or lies off its scale, is kept only as raw text: the
        review is still stored, without a rating, and the problem is counted.
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
            self.count("unparsable_rating", url, "rating %r is not a number", raw)
            return None, raw
        if high <= low or not low <= number <= high:
            self.count(
                "rating_out_of_scale", url, "rating %s is outside its scale %s–%s", raw, low, high
            )
            return None, raw
        return round((number - low) / (high - low), 4), raw

    def date(self, url: str, value: Any) -> datetime | None:
        if value in (None, ""):
            self.count("undated", url, "a review has no date; it is stored with the crawl date")
            return None
        parsed = parse_date(str(value))
        if parsed is None:
            self.count("unparsable_date", url, "date %r could not be read", value)
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
