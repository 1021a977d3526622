"""Platform clients: one module per platform, each turning its API's posts into ``MentionRecord``s.

Every client has the same shape: built from its source's config, the business and a ``Context``
(the shared HTTP client, the cursor where the last complete run stopped, counters), it yields
records from ``mentions()`` and then says where to start next time with ``next_cursor()``.
``collect_platforms`` runs them one by one, each into the same pipeline as the spiders; one
platform failing never stops the others.
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.clients.http import ApiError, JsonApi, MissingCredentials
from monitor.config import Business, Config, SpiderSource
from monitor.pipeline import DroppedMention, Ingest
from monitor.records import MentionRecord
from monitor.runs import SourceOutcome, record_outcome
from monitor.store import Store
from monitor.touchpoints import Taxonomy

log = logging.getLogger(__name__)

# source type → module under monitor/clients (imported only when a source needs it)
MODULES = {
    "reddit": "monitor.clients.reddit",
    "mastodon": "monitor.clients.mastodon",
    "bluesky": "monitor.clients.bluesky",
    "hackernews": "monitor.clients.hackernews",
}


@dataclass
class Context:
    api: JsonApi
    user_agent: str
    cursor: str | None
    """Where the last complete run of this source stopped (the client's own format)."""
    counts: Counter[str] = field(default_factory=Counter)


class PlatformClient(Protocol):
    def mentions(self) -> Iterator[MentionRecord]: ...

    def next_cursor(self) -> str | None: ...


def build_client(source: Any, business: Business, context: Context) -> PlatformClient:
    module = importlib.import_module(MODULES[source.type])
    client: PlatformClient = module.Client(source, business, context)
    return client


def collect_source(
    source: Any,
    business: Business,
    context: Context,
    ingest: Ingest,
) -> SourceOutcome:
    """Run one client into the pipeline; what it fetched before failing is still stored."""
    status, reason = "ok", ""
    cursor: str | None = None
    try:
        client = build_client(source, business, context)
        for record in client.mentions():
            try:
                ingest.add(record)
            except DroppedMention as problem:
                log.warning("%s/%s: dropped a mention (%s)", business.key, source.name, problem)
        cursor = client.next_cursor()
    except MissingCredentials as exc:
        status, reason = "skipped", str(exc)
    except ApiError as exc:
        status, reason = "failed", str(exc)
    finally:
        ingest.flush()
    counts = ingest.counts
    dropped = sum(v for k, v in counts.items() if k.startswith("dropped/"))
    if status == "ok" and counts["new"] + counts["duplicate"] + dropped == 0:
        status = "empty"
    outcome = SourceOutcome(
        business=business.key,
        source=source.name,
        status=status,
        new=counts["new"],
        duplicates=counts["duplicate"],
        dropped=dropped,
        errors=1 if status == "failed" else 0,
        reason=reason,
        detail={
            **{f"monitor/{k}": v for k, v in context.counts.items()},
            **{
                f"drop_item/{k.removeprefix('dropped/')}": v
                for k, v in counts.items()
                if k.startswith("dropped/")
            },
            "requests": context.api.requests_made,
        },
    )
    if status in ("ok", "empty") and cursor is not None:
        ingest.store.set_cursor(ingest.source_id, cursor)
    return outcome


def collect_platforms(
    config: Config, store: Store, taxonomy: Taxonomy, run_id: int | None = None
) -> list[SourceOutcome]:
    """Collect every enabled platform source of every business."""
    outcomes = []
    for business in config.businesses:
        platform_sources = [
            s for s in business.sources if not isinstance(s, SpiderSource) and s.enabled
        ]
        if not platform_sources:
            continue
        business_id = store.business_id(business.key, business.name)
        for source in platform_sources:
            source_id = store.source_id(business_id, source.name, source.type)
            api = JsonApi(
                config.user_agent,
                timeout=config.crawl.timeout,
                retries=config.crawl.retries,
                backoff=config.crawl.retry_backoff,
            )
            context = Context(api=api, user_agent=config.user_agent, cursor=store.cursor(source_id))
            ingest = Ingest(
                store,
                taxonomy,
                business_id,
                source_id,
                run_id,
                hash_authors=config.privacy.hash_authors,
            )
            outcome = collect_source(source, business, context, ingest)
            level = logging.WARNING if outcome.status in ("failed", "skipped") else logging.INFO
            log.log(level, outcome.summary())
            record_outcome(store, run_id, source_id, outcome)
            outcomes.append(outcome)
    return outcomes
