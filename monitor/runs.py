"""A collection run, and what it did with each source: the outcome every collector reports.

Outcomes are stored per run (``source_runs``) so the digest can say which sources failed and
``monitor status`` can show each source's health.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from monitor.config import Config
from monitor.scoring import ScoreResult
from monitor.store import Store, utc_now
from monitor.touchpoints import Taxonomy

log = logging.getLogger(__name__)


@dataclass
class SourceOutcome:
    business: str
    source: str
    status: str
    """ok, empty (reached, nothing found), skipped (not configured, e.g. no credentials), failed."""
    new: int = 0
    duplicates: int = 0
    dropped: int = 0
    errors: int = 0
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        return (
            f"{self.business}/{self.source}: {self.status}, {self.new} new, "
            f"{self.duplicates} already stored, {self.dropped} dropped{reason}"
        )


def record_outcome(
    store: Store, run_id: int | None, source_id: int, outcome: SourceOutcome
) -> None:
    if run_id is None:
        return
    store.record_source_run(
        run_id,
        source_id,
        status=outcome.status,
        new=outcome.new,
        duplicates=outcome.duplicates,
        dropped=outcome.dropped,
        errors=outcome.errors,
        detail={"reason": outcome.reason, **outcome.detail},
    )


@dataclass
class RunResult:
    run_id: int
    outcomes: list[SourceOutcome]
    deleted: int = 0
    scoring: ScoreResult = field(default_factory=ScoreResult)

    @property
    def failed(self) -> list[SourceOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def status(self) -> str:
        """ok; partial (some sources failed); failed (every source that ran failed)."""
        tried = [o for o in self.outcomes if o.status != "skipped"]
        if tried and len(self.failed) == len(tried):
            return "failed"
        return "partial" if self.failed else "ok"


def collect(config: Config, store: Store, taxonomy: Taxonomy, command: str) -> RunResult:
    """One collection run: every platform, then every spider, then the scoring pass.

    Call it holding the run lock (``monitor.lock.run_lock``). A run killed half-way is marked
    ``interrupted`` by the next one; what it stored stays stored, exactly once.
    """
    from monitor.clients import collect_platforms
    from monitor.crawl import crawl_sources  # imports Scrapy and Twisted: only when crawling
    from monitor.scoring import score_pending

    run_id = store.start_run(command)
    outcomes: list[SourceOutcome] = []
    try:
        outcomes += collect_platforms(config, store, taxonomy, run_id)
        outcomes += crawl_sources(config, store, taxonomy, run_id)
        # Everything unscored, not only this run's: a killed run's mentions are judged now.
        scoring = score_pending(store, taxonomy, config.scoring_processes)
    except BaseException:
        store.finish_run(run_id, "failed")
        raise
    result = RunResult(run_id, outcomes, scoring=scoring)
    if config.privacy.retention_days:
        cutoff = utc_now() - timedelta(days=config.privacy.retention_days)
        result.deleted = store.delete_older_than(cutoff)
        log.info("retention: deleted %d mentions older than %s", result.deleted, cutoff.date())
    store.finish_run(run_id, result.status)
    return result
