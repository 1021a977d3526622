"""Retries in one place: back off on 429 and 5xx, and wait as long as ``Retry-After`` asks."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from scrapy import Request, Spider
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.response import response_status_message
from twisted.internet import reactor
from twisted.internet.task import deferLater


def retry_after_seconds(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry, plus a wait before each retry.

    The wait is the server's ``Retry-After`` when it sends one, else exponential backoff with
    jitter (``RETRY_BACKOFF_BASE`` × 2^attempt, at most ``RETRY_BACKOFF_MAX``). A ``Retry-After``
    longer than ``RETRY_AFTER_MAX`` is not waited for: the request fails now, with its reason,
    rather than keeping a cron run alive for hours.
    """

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE", 1.0)
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX", 60.0)
        self.retry_after_max = settings.getfloat("RETRY_AFTER_MAX", 300.0)

    async def process_response(  # type: ignore[override]
        self, request: Request, response: Response, spider: Spider | None = None
    ) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        spider = spider or self.crawler.spider
        stats = self.crawler.stats
        assert stats is not None
        attempt = int(request.meta.get("retry_times", 0))
        asked = retry_after_seconds(response.headers.get(b"Retry-After"))
        if asked is not None and asked > self.retry_after_max:
            spider.logger.warning(
                "%s asks to retry after %.0f s, longer than the %.0f s allowed: giving up on %s",
                response.status,
                asked,
                self.retry_after_max,
                request.url,
            )
            stats.inc_value("monitor/retry_after_too_long")
            return response
        retry = self._retry(request, response_status_message(response.status))
        if retry is None:
            return response  # retries exhausted: the spider's errback sees the error status
        if asked is not None:
            delay = asked
            stats.inc_value("monitor/retry_after_honoured")
        else:
            delay = min(self.backoff_max, self.backoff_base * 2**attempt)
            delay *= random.uniform(0.5, 1.0)  # jitter: retries from many requests do not align
        if delay > 0:
            await maybe_deferred_to_future(deferLater(reactor, delay, lambda: None))  # type: ignore[arg-type]
        return retry
