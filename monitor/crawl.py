"""Runs the configured spiders (one Scrapy process, all sources at once) and reports per source.

A source that could not be reached is reported as ``failed`` with its reason; one that was
reached but yielded nothing as ``empty`` — never silently as a quiet week.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.settings import Settings
from sqlalchemy import func, select

from monitor.config import Business, Config, SpiderSource
from monitor.runs import SourceOutcome, record_outcome
from monitor.store import Mention, Store
from monitor.touchpoints import Taxonomy
from spiders.base import SourceSpider
from spiders.feed import FeedSpider
from spiders.selectors import SelectorSpider
from spiders.structured_data import StructuredDataSpider

log = logging.getLogger(__name__)

SPIDERS: dict[str, type[SourceSpider]] = {
    "structured_data": StructuredDataSpider,
    "selectors": SelectorSpider,
    "feed": FeedSpider,
}


def scrapy_settings(config: Config) -> Settings:
    settings = Settings()
    settings.setmodule("spiders.settings", priority="project")
    crawl = config.crawl
    settings.setdict(
        {
            "USER_AGENT": config.user_agent,
            "ROBOTSTXT_OBEY": crawl.obey_robots,
            "AUTOTHROTTLE_ENABLED": crawl.autothrottle,
            "CONCURRENT_REQUESTS": crawl.concurrent_requests,
            "CONCURRENT_REQUESTS_PER_DOMAIN": crawl.concurrent_per_domain,
            "DOWNLOAD_DELAY": crawl.download_delay,
            "DOWNLOAD_TIMEOUT": crawl.timeout,
            "HTTPCACHE_ENABLED": crawl.http_cache,
            "RETRY_TIMES": crawl.retries,
            "RETRY_BACKOFF_BASE": crawl.retry_backoff,
            "DOWNLOAD_MAXSIZE": int(crawl.max_page_mb * 1024 * 1024),
            "DOWNLOAD_WARNSIZE": int(crawl.max_page_mb * 1024 * 1024 / 4),
        },
        priority="cmdline",
    )
    return settings


def _known_until(store: Store, source_id: int) -> datetime | None:
    """Where the last complete crawl of a source got to (see ``_remember_progress``)."""
    cursor = store.cursor(source_id)
    return datetime.fromisoformat(cursor) if cursor else None


def _remember_progress(store: Store, source_id: int) -> None:
    """After a complete crawl only: a killed crawl must not let the next one stop early."""
    with store.engine.connect() as connection:
        newest = connection.scalar(
            select(func.max(Mention.published_at)).where(Mention.source_id == source_id)
        )
    if newest is not None:
        store.set_cursor(source_id, newest.isoformat())


def _outcome(business: Business, source: SpiderSource, crawler: Crawler) -> SourceOutcome:
    stats: dict[str, Any] = crawler.stats.get_stats() if crawler.stats else {}
    new = int(stats.get("monitor/new", 0))
    duplicates = int(stats.get("monitor/duplicate", 0))
    dropped = sum(int(v) for k, v in stats.items() if k.startswith("drop_item/"))
    failed_requests = sum(
        int(v) for k, v in stats.items() if k.startswith("monitor/request_failed/")
    )
    errors = int(stats.get("log_count/ERROR", 0)) + failed_requests
    responses = int(stats.get("response_received_count", 0))
    finish = str(stats.get("finish_reason", "unknown"))
    detail = {
        k: v
        for k, v in stats.items()
        if k.startswith(("monitor/", "drop_item/", "downloader/response_status_count/", "retry/"))
        or k
        in (
            "finish_reason",
            "response_received_count",
            "log_count/ERROR",
            "log_count/WARNING",
            "dupefilter/filtered",
        )
    }
    reason = ""
    if finish != "finished":
        status, reason = "failed", f"crawl ended early: {finish}"
    elif new + duplicates + dropped == 0 and (failed_requests or errors or responses == 0):
        status = "failed"
        if failed_requests:
            reason = f"{failed_requests} page(s) could not be fetched, no mentions"
        elif responses == 0:
            reason = "no page could be fetched"
        else:
            reason = f"{errors} errors, no mentions"
    elif new + duplicates + dropped == 0:
        status, reason = "empty", "pages were fetched but held no mentions"
    else:
        status = "ok"
    return SourceOutcome(
        business.key, source.name, status, new, duplicates, dropped, errors, reason, detail
    )


def crawl_sources(
    config: Config,
    store: Store,
    taxonomy: Taxonomy,
    run_id: int | None = None,
    only: set[str] | None = None,
) -> list[SourceOutcome]:
    """Crawl every enabled source (or those named in ``only``) and store what they find."""
    settings = scrapy_settings(config)
    # Our CLI configures logging (quiet for cron); Scrapy must not add its own root handler.
    settings.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")
    process = CrawlerProcess(settings)
    planned: list[tuple[Business, SpiderSource, int, Crawler]] = []
    for business in config.businesses:
        business_id = store.business_id(business.key, business.name)
        for source in business.sources:
            if not isinstance(source, SpiderSource) or not source.enabled:
                continue
            if only and source.name not in only:
                continue
            source_id = store.source_id(business_id, source.name, source.type)
            crawler = process.create_crawler(SPIDERS[source.type])
            known_until = _known_until(store, source_id) if config.crawl.stop_at_known else None
            process.crawl(
                crawler,
                config=config,
                business=business,
                source=source,
                store=store,
                taxonomy=taxonomy,
                business_id=business_id,
                source_id=source_id,
                run_id=run_id,
                known_until=known_until,
            )
            planned.append((business, source, source_id, crawler))
    if not planned:
        return []
    process.start()
    outcomes = []
    for business, source, source_id, crawler in planned:
        outcome = _outcome(business, source, crawler)
        outcomes.append(outcome)
        if outcome.status == "ok":
            _remember_progress(store, source_id)
        log.log(logging.WARNING if outcome.status != "ok" else logging.INFO, outcome.summary())
        record_outcome(store, run_id, source_id, outcome)
    return outcomes
