"""Run history and source health, for `monitor status`: what ran, and what needs attention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from monitor.store import Business, Mention, Run, Source, SourceRun, Store


@dataclass
class RunLine:
    id: int
    command: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    new: int
    failed_sources: int


@dataclass
class SourceHealth:
    business: str
    source: str
    type: str
    mentions: int
    last_status: str
    last_reason: str
    last_ok: datetime | None
    failures_in_a_row: int


def recent_runs(store: Store, limit: int = 10) -> list[RunLine]:
    new = func.coalesce(func.sum(SourceRun.new), 0)
    failed = func.coalesce(func.sum((SourceRun.status == "failed").cast(Run.id.type)), 0)
    rows = store_rows(
        store,
        select(Run.id, Run.command, Run.started_at, Run.finished_at, Run.status, new, failed)
        .outerjoin(SourceRun, SourceRun.run_id == Run.id)
        .group_by(Run.id, Run.command, Run.started_at, Run.finished_at, Run.status)
        .order_by(Run.id.desc())
        .limit(limit),
    )
    return [RunLine(*row) for row in rows]


def source_health(store: Store, history: int = 20) -> list[SourceHealth]:
    """Each source's last outcome, last success and how many runs in a row it has failed."""
    mentions = dict(
        store_rows(store, select(Mention.source_id, func.count()).group_by(Mention.source_id))
    )
    sources = store_rows(
        store,
        select(Source.id, Business.name, Source.name, Source.type)
        .join(Business, Business.id == Source.business_id)
        .order_by(Business.name, Source.name),
    )
    health = []
    for source_id, business, name, type_ in sources:
        runs = store_rows(
            store,
            select(SourceRun.status, SourceRun.detail, Run.started_at)
            .join(Run, Run.id == SourceRun.run_id)
            .where(SourceRun.source_id == source_id)
            .order_by(SourceRun.run_id.desc())
            .limit(history),
        )
        failures = 0
        for status, _, _ in runs:
            if status != "failed":
                break
            failures += 1
        last_ok = next((at for status, _, at in runs if status in ("ok", "empty")), None)
        last_status, last_detail = (runs[0][0], runs[0][1] or {}) if runs else ("never run", {})
        health.append(
            SourceHealth(
                business=business,
                source=name,
                type=type_,
                mentions=int(mentions.get(source_id, 0)),
                last_status=last_status,
                last_reason=str(last_detail.get("reason", "")),
                last_ok=last_ok,
                failures_in_a_row=failures,
            )
        )
    return health


def store_rows(store: Store, query: Any) -> list[tuple[Any, ...]]:
    with store.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]
