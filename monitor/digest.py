"""The digest: numbers for one business and period, aggregated in SQL, drawn by ``reports/``.

It reads only what the store holds; it never re-scores or re-classifies a mention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection

from monitor.config import Business, Config
from monitor.sentiment import UNSUPPORTED
from monitor.store import Business as BusinessRow
from monitor.store import (
    Mention,
    MentionScore,
    Source,
    SourceRun,
    Store,
    TouchpointAssignment,
)
from monitor.touchpoints import UNCLASSIFIED, Taxonomy

REPORTS = Path(__file__).resolve().parent.parent / "reports"
TOP_MENTIONS = 5


@dataclass(frozen=True)
class Period:
    start: datetime
    """Inclusive, UTC."""
    end: datetime
    """Exclusive, UTC."""
    label: str

    @classmethod
    def iso_week(cls, year: int, week: int) -> Period:
        start = datetime.combine(date.fromisocalendar(year, week, 1), datetime.min.time())
        return cls(start, start + timedelta(days=7), f"{year}-W{week:02d}")

    @classmethod
    def parse_week(cls, text: str) -> Period:
        """``2026-W47`` → that ISO week."""
        try:
            year_text, week_text = text.upper().split("-W")
            return cls.iso_week(int(year_text), int(week_text))
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO week like 2026-W47") from None

    @classmethod
    def last_complete_week(cls, today: date | None = None) -> Period:
        """The ISO week before the current one: what a Monday cron run reports on."""
        day = (today or datetime.now(UTC).date()) - timedelta(days=7)
        year, week, _ = day.isocalendar()
        return cls.iso_week(year, week)

    @classmethod
    def week_containing(cls, moment: datetime) -> Period:
        year, week, _ = moment.isocalendar()
        return cls.iso_week(year, week)

    @classmethod
    def between(cls, since: date, until: date) -> Period:
        """From ``since`` to ``until``, both days included."""
        start = datetime.combine(since, datetime.min.time())
        end = datetime.combine(until, datetime.min.time()) + timedelta(days=1)
        return cls(start, end, f"{since.isoformat()} to {until.isoformat()}")


def score_1_to_10(compound: float | None) -> float | None:
    """Mean VADER compound (−1 … +1) on a 1 (low) … 10 (high) scale: 1 + 9 × (c + 1) / 2."""
    if compound is None:
        return None
    return round(1 + 9 * (compound + 1) / 2, 1)


@dataclass
class TouchpointRow:
    id: str
    label: str
    stage: str
    mentions: int
    primary: int
    positive: int
    negative: int
    average: float | None
    score: float | None


@dataclass
class MentionView:
    id: int
    title: str | None
    text: str
    url: str
    author: str | None
    source: str
    occurred_at: datetime
    compound: float | None
    label: str
    rating: float | None
    touchpoint: str


@dataclass
class Digest:
    business: str
    period: Period
    generated_at: datetime
    total: int
    scored: int
    average: float | None
    score: float | None
    labels: dict[str, int]
    touchpoints: list[TouchpointRow]
    most_positive: list[MentionView]
    most_negative: list[MentionView]
    sources: list[dict[str, Any]]
    failed_sources: list[dict[str, Any]] = field(default_factory=list)


def _business_row_id(connection: Connection, business: Business) -> int | None:
    return connection.scalar(select(BusinessRow.id).where(BusinessRow.key == business.key))


def _in_period(business_id: int, period: Period) -> Any:
    return and_(
        Mention.business_id == business_id,
        Mention.occurred_at >= period.start,
        Mention.occurred_at < period.end,
    )


def _totals(connection: Connection, business_id: int, period: Period) -> dict[str, Any]:
    scored = MentionScore.label != UNSUPPORTED
    row = connection.execute(
        select(
            func.count(Mention.id),
            func.count(case((scored, 1))),
            func.avg(case((scored, MentionScore.compound))),
        )
        .join(MentionScore, MentionScore.mention_id == Mention.id)
        .where(_in_period(business_id, period))
    ).one()
    labels = dict(
        connection.execute(
            select(MentionScore.label, func.count())
            .join(Mention, MentionScore.mention_id == Mention.id)
            .where(_in_period(business_id, period))
            .group_by(MentionScore.label)
        ).all()
    )
    return {"total": row[0], "scored": row[1], "average": row[2], "labels": labels}


def _touchpoint_rows(
    connection: Connection, business_id: int, period: Period, taxonomy: Taxonomy
) -> list[TouchpointRow]:
    assignment = TouchpointAssignment
    rows = connection.execute(
        select(
            assignment.touchpoint,
            func.count(),
            func.sum(case((assignment.rank == 0, 1), else_=0)),
            func.sum(case((assignment.label == "positive", 1), else_=0)),
            func.sum(case((assignment.label == "negative", 1), else_=0)),
            func.avg(assignment.compound),
        )
        .join(Mention, assignment.mention_id == Mention.id)
        .where(_in_period(business_id, period))
        .group_by(assignment.touchpoint)
    ).all()
    found = {r[0]: r for r in rows}
    result = []
    ordered = [t.id for s in taxonomy.stages for t in s.touchpoints] + [UNCLASSIFIED]
    ordered += sorted(set(found) - set(ordered))  # touchpoints since removed from the taxonomy
    for touchpoint_id in ordered:
        r = found.get(touchpoint_id)
        average = float(r[5]) if r and r[5] is not None else None
        result.append(
            TouchpointRow(
                id=touchpoint_id,
                label=taxonomy.label(touchpoint_id),
                stage=taxonomy.stage_of(touchpoint_id) or "",
                mentions=int(r[1]) if r else 0,
                primary=int(r[2] or 0) if r else 0,
                positive=int(r[3] or 0) if r else 0,
                negative=int(r[4] or 0) if r else 0,
                average=average,
                score=score_1_to_10(average),
            )
        )
    return result


def _top_mentions(
    connection: Connection, business_id: int, period: Period, taxonomy: Taxonomy, *, best: bool
) -> list[MentionView]:
    compound = MentionScore.compound
    wanted = compound >= 0.05 if best else compound <= -0.05
    rows = connection.execute(
        select(
            Mention.id,
            Mention.title,
            Mention.text,
            Mention.url,
            Mention.author,
            Source.name,
            Mention.occurred_at,
            compound,
            MentionScore.label,
            Mention.rating,
            TouchpointAssignment.touchpoint,
        )
        .join(MentionScore, MentionScore.mention_id == Mention.id)
        .join(Source, Source.id == Mention.source_id)
        .join(
            TouchpointAssignment,
            and_(TouchpointAssignment.mention_id == Mention.id, TouchpointAssignment.rank == 0),
        )
        .where(_in_period(business_id, period), wanted)
        .order_by(compound.desc() if best else compound.asc(), Mention.id)
        .limit(TOP_MENTIONS)
    ).all()
    return [MentionView(*r[:10], touchpoint=taxonomy.label(r[10])) for r in rows]


def _sources(connection: Connection, business_id: int, period: Period) -> list[dict[str, Any]]:
    in_period = and_(Mention.occurred_at >= period.start, Mention.occurred_at < period.end)
    rows = connection.execute(
        select(
            Source.id,
            Source.name,
            Source.type,
            func.count(Mention.id),
            func.avg(MentionScore.compound),
        )
        .outerjoin(Mention, and_(Mention.source_id == Source.id, in_period))
        .outerjoin(MentionScore, MentionScore.mention_id == Mention.id)
        .where(Source.business_id == business_id)
        .group_by(Source.id, Source.name, Source.type)
        .order_by(Source.name)
    ).all()
    latest_run = connection.scalar(
        select(func.max(SourceRun.run_id))
        .join(Source, Source.id == SourceRun.source_id)
        .where(Source.business_id == business_id)
    )
    health: dict[int, tuple[str, str]] = {}
    if latest_run is not None:
        for source_id, status, detail in connection.execute(
            select(SourceRun.source_id, SourceRun.status, SourceRun.detail).where(
                SourceRun.run_id == latest_run
            )
        ):
            health[source_id] = (status, (detail or {}).get("reason", ""))
    return [
        {
            "name": name,
            "type": type_,
            "mentions": count,
            "average": float(avg) if avg is not None else None,
            "status": health.get(source_id, ("not run", ""))[0],
            "reason": health.get(source_id, ("", ""))[1],
        }
        for source_id, name, type_, count, avg in rows
    ]


def build_digest(store: Store, business: Business, period: Period, taxonomy: Taxonomy) -> Digest:
    with store.engine.connect() as connection:
        business_id = _business_row_id(connection, business)
        if business_id is None:
            totals: dict[str, Any] = {"total": 0, "scored": 0, "average": None, "labels": {}}
            touchpoints = _touchpoint_rows(connection, -1, period, taxonomy)
            best: list[MentionView] = []
            worst: list[MentionView] = []
            sources: list[dict[str, Any]] = []
        else:
            totals = _totals(connection, business_id, period)
            touchpoints = _touchpoint_rows(connection, business_id, period, taxonomy)
            best = _top_mentions(connection, business_id, period, taxonomy, best=True)
            worst = _top_mentions(connection, business_id, period, taxonomy, best=False)
            sources = _sources(connection, business_id, period)
    average = float(totals["average"]) if totals["average"] is not None else None
    return Digest(
        business=business.name,
        period=period,
        generated_at=datetime.now(UTC).replace(microsecond=0),
        total=int(totals["total"]),
        scored=int(totals["scored"]),
        average=average,
        score=score_1_to_10(average),
        labels=totals["labels"],
        touchpoints=touchpoints,
        most_positive=best,
        most_negative=worst,
        sources=sources,
        failed_sources=[s for s in sources if s["status"] == "failed"],
    )


def web_link(url: str | None) -> str | None:
    """The URL when it is a web address; ``None`` for anything a click could run or open locally."""
    if url and urlsplit(url.strip()).scheme.lower() in ("http", "https"):
        return url.strip()
    return None


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(REPORTS),
        autoescape=True,  # every string from the web is escaped, whatever the template says
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["signed"] = lambda v: "–" if v is None else f"{v:+.2f}"
    environment.filters["web_link"] = web_link
    environment.filters["score"] = lambda v: "–" if v is None else f"{v:.1f}"
    return environment


def render_digest(digest: Digest, taxonomy: Taxonomy) -> str:
    template = _environment().get_template("digest.html.j2")
    return template.render(digest=digest, stages=taxonomy.stages, unclassified=UNCLASSIFIED)


def digest_path(config: Config, business: Business, period: Period) -> Path:
    name = period.label.replace(" ", "_")
    return Path(config.output_dir) / f"{business.key}-{name}.html"


def write_digest(
    config: Config, store: Store, taxonomy: Taxonomy, period: Period, output: Path | None = None
) -> Path:
    business = config.business
    digest = build_digest(store, business, period, taxonomy)
    path = output or digest_path(config, business, period)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(render_digest(digest, taxonomy), encoding="utf-8")
    temporary.replace(path)  # a reader never sees half a digest
    return path


def newest_mention(store: Store, business: Business) -> datetime | None:
    with store.engine.connect() as connection:
        return connection.scalar(
            select(func.max(Mention.occurred_at))
            .join(BusinessRow, BusinessRow.id == Mention.business_id)
            .where(BusinessRow.key == business.key)
        )
