"""The digest: numbers for one business and period, aggregated in SQL, drawn by ``reports/``.

It reads only what the store holds; it never re-scores or re-classifies a mention. Every number
comes from a GROUP BY over the period (and its history); only the handful of mentions shown as
examples are loaded as rows.
"""

from __future__ import annotations

import calendar
import math
import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import ColumnElement, and_, case, func, literal, not_, or_, select
from sqlalchemy.engine import Connection

from monitor.config import Business, Config, DigestSettings
from monitor.sentiment import NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD, UNSUPPORTED
from monitor.store import Business as BusinessRow
from monitor.store import (
    Mention,
    MentionScore,
    SentenceScore,
    Source,
    SourceRun,
    Store,
    TouchpointAssignment,
)
from monitor.touchpoints import EMPLOYEE_TOUCHPOINT, UNCLASSIFIED, Taxonomy

REPORTS = Path(__file__).resolve().parent.parent / "reports"
# 1–2 stars on a 1–5 scale, stored as 0–1.
LOW_RATING = 0.25
EMPLOYEE_KINDS = ("employee_pros", "employee_cons", "employee_advice", "employee_review")


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    start: datetime
    """Inclusive, UTC."""
    end: datetime
    """Exclusive, UTC."""
    label: str
    kind: str = "custom"
    """week, month or custom: what "the previous period" means."""

    @classmethod
    def iso_week(cls, year: int, week: int) -> Period:
        start = datetime.combine(date.fromisocalendar(year, week, 1), datetime.min.time())
        return cls(start, start + timedelta(days=7), f"{year}-W{week:02d}", "week")

    @classmethod
    def parse_week(cls, text: str) -> Period:
        """``2026-W47`` → that ISO week."""
        try:
            year_text, week_text = text.upper().split("-W")
            return cls.iso_week(int(year_text), int(week_text))
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO week like 2026-W47") from None

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        start = datetime(year, month, 1)
        days = calendar.monthrange(year, month)[1]
        return cls(start, start + timedelta(days=days), f"{year}-{month:02d}", "month")

    @classmethod
    def last_complete_week(cls, today: date | None = None) -> Period:
        """The ISO week before the current one: what a Monday cron run reports on."""
        day = (today or datetime.now(UTC).date()) - timedelta(days=7)
        year, week, _ = day.isocalendar()
        return cls.iso_week(year, week)

    @classmethod
    def last_complete_month(cls, today: date | None = None) -> Period:
        first = (today or datetime.now(UTC).date()).replace(day=1) - timedelta(days=1)
        return cls.month(first.year, first.month)

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

    def previous(self) -> Period:
        if self.kind == "week":
            return Period.week_containing(self.start - timedelta(days=7))
        if self.kind == "month":
            before = self.start - timedelta(days=1)
            return Period.month(before.year, before.month)
        length = self.end - self.start
        start = self.start - length
        last_day = (self.start - timedelta(days=1)).date()
        return Period(start, self.start, f"{start.date().isoformat()} to {last_day.isoformat()}")

    def history(self, count: int) -> list[Period]:
        """The ``count`` periods before this one, oldest first."""
        periods: list[Period] = []
        current = self
        for _ in range(count):
            current = current.previous()
            periods.append(current)
        return periods[::-1]


# --------------------------------------------------------------------------- the digest's parts


def score_1_to_10(compound: float | None) -> float | None:
    """Mean VADER compound (−1 … +1) on a 1 (low) … 10 (high) scale: 1 + 9 × (c + 1) / 2."""
    if compound is None:
        return None
    return round(1 + 9 * (compound + 1) / 2, 1)


@dataclass
class Cell:
    """One touchpoint in one period."""

    mentions: int = 0
    primary: int = 0
    positive: int = 0
    negative: int = 0
    scored: int = 0
    total: float = 0.0

    @property
    def average(self) -> float | None:
        return self.total / self.scored if self.scored else None

    @property
    def score(self) -> float | None:
        return score_1_to_10(self.average)


@dataclass
class TouchpointRow:
    id: str
    label: str
    stage: str
    now: Cell
    before: Cell
    trend: list[float | None]
    """The score in each history period and this one, oldest first."""

    @property
    def change(self) -> float | None:
        if self.now.score is None or self.before.score is None:
            return None
        return round(self.now.score - self.before.score, 1)


@dataclass
class StageRow:
    id: str
    label: str
    touchpoints: list[TouchpointRow]

    @property
    def mentions(self) -> int:
        return sum(t.now.mentions for t in self.touchpoints)


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
    has_reply: bool
    sentence: str | None = None
    """The sentence that carried the judgement, shown highlighted."""


@dataclass
class Alert:
    touchpoint: str
    label: str
    kind: str
    """sentiment or volume."""
    direction: str
    """up or down."""
    now: float
    usual: float
    spread: float
    mentions: list[MentionView] = field(default_factory=list)

    @property
    def headline(self) -> str:
        if self.kind == "sentiment":
            verb = "turned worse" if self.direction == "down" else "turned better"
            return (
                f"{self.label} {verb}: score {score_1_to_10(self.now)} against a usual "
                f"{score_1_to_10(self.usual)}"
            )
        verb = "far more" if self.direction == "up" else "far fewer"
        return f"{self.label}: {verb} mentions than usual ({self.now:.0f} against about {self.usual:.0f})"


@dataclass
class Highlights:
    stage: str
    label: str
    best: list[MentionView]
    worst: list[MentionView]


@dataclass
class CompetitorColumn:
    business: str
    mentions: int
    score: float | None
    by_touchpoint: dict[str, float | None]


@dataclass
class Digest:
    business: str
    period: Period
    previous: Period
    history: list[Period]
    generated_at: datetime
    total: int
    previous_total: int
    scored: int
    unscored: int
    """Stored but not yet judged (a scoring pass was interrupted or has not run): in ``total`` only."""
    average: float | None
    score: float | None
    previous_score: float | None
    weighted_average: float | None
    weighted_score: float | None
    half_life_days: float
    labels: dict[str, int]
    stages: list[StageRow]
    unclassified: TouchpointRow
    alerts: list[Alert]
    needs_reply: list[MentionView]
    needs_reply_total: int
    highlights: list[Highlights]
    first_impressions: list[MentionView]
    first_impression_count: int
    employee: TouchpointRow | None
    employee_comments: list[MentionView]
    sources: list[dict[str, Any]]
    failed_sources: list[dict[str, Any]]
    competitors: list[CompetitorColumn]
    competitor_rows: list[tuple[str, list[float | None]]]
    """Touchpoints that at least one business has a score for: (label, score per business)."""
    rating_disagreements: int
    reply_window_days: int

    @property
    def score_change(self) -> float | None:
        if self.score is None or self.previous_score is None:
            return None
        return round(self.score - self.previous_score, 1)


# --------------------------------------------------------------------------- SQL


def _within(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(Mention.occurred_at >= start, Mention.occurred_at < end)


def _is_employee() -> ColumnElement[bool]:
    return Mention.kind.in_(EMPLOYEE_KINDS)


def _bucket(periods: list[Period]) -> Any:
    """Which of ``periods`` a mention falls in, as a CASE expression (portable SQL)."""
    return case(
        *[(_within(p.start, p.end), literal(i)) for i, p in enumerate(periods)],
        else_=literal(-1),
    )


def _cells(
    connection: Connection, business_id: int, periods: list[Period]
) -> dict[tuple[int, str], Cell]:
    """(period index, touchpoint) → counts and sentiment, in one GROUP BY over the window."""
    assignment = TouchpointAssignment
    bucket = _bucket(periods).label("bucket")
    scored = assignment.label != UNSUPPORTED
    rows = connection.execute(
        select(
            bucket,
            assignment.touchpoint,
            func.count(),
            func.sum(case((assignment.rank == 0, 1), else_=0)),
            func.sum(case((assignment.label == "positive", 1), else_=0)),
            func.sum(case((assignment.label == "negative", 1), else_=0)),
            func.sum(case((scored, 1), else_=0)),
            func.sum(case((scored, assignment.compound), else_=0.0)),
        )
        .join(Mention, assignment.mention_id == Mention.id)
        .where(Mention.business_id == business_id, _within(periods[0].start, periods[-1].end))
        .group_by(bucket, assignment.touchpoint)
    ).all()
    return {
        (int(b), tp): Cell(
            int(n), int(p or 0), int(pos or 0), int(neg or 0), int(s or 0), float(t or 0)
        )
        for b, tp, n, p, pos, neg, s, t in rows
        if int(b) >= 0
    }


def _totals(connection: Connection, business_id: int, period: Period) -> dict[str, Any]:
    scored = MentionScore.label != UNSUPPORTED
    customer = not_(_is_employee())
    in_period = and_(Mention.business_id == business_id, _within(period.start, period.end))
    # An outer join: a mention the scoring pass has not reached yet still counts, and is named.
    total, unscored, n_scored, average, first, disagree = connection.execute(
        select(
            func.count(Mention.id),
            func.sum(case((MentionScore.mention_id.is_(None), 1), else_=0)),
            func.sum(case((and_(scored, customer), 1), else_=0)),
            func.avg(case((and_(scored, customer), MentionScore.compound))),
            func.sum(case((and_(MentionScore.first_impression, customer), 1), else_=0)),
            func.sum(case((MentionScore.rating_disagrees, 1), else_=0)),
        )
        .outerjoin(MentionScore, MentionScore.mention_id == Mention.id)
        .where(in_period, customer)
    ).one()
    labels = dict(
        connection.execute(
            select(MentionScore.label, func.count())
            .join(Mention, MentionScore.mention_id == Mention.id)
            .where(in_period, customer)
            .group_by(MentionScore.label)
        ).all()
    )
    return {
        "total": int(total or 0),
        "unscored": int(unscored or 0),
        "scored": int(n_scored or 0),
        "average": float(average) if average is not None else None,
        "first": int(first or 0),
        "disagree": int(disagree or 0),
        "labels": labels,
    }


def _weighted_average(
    connection: Connection, business_id: int, window: Period, until: datetime, half_life: float
) -> float | None:
    """Recency-weighted mean compound: a mention ``half_life`` days old counts half.

    Summed per day in SQL; the exponential weights are applied to those daily sums.
    """
    day = func.date(Mention.occurred_at).label("day")
    rows = connection.execute(
        select(day, func.sum(MentionScore.compound), func.count())
        .join(MentionScore, MentionScore.mention_id == Mention.id)
        .where(
            Mention.business_id == business_id,
            _within(window.start, until),
            MentionScore.label != UNSUPPORTED,
            not_(_is_employee()),
        )
        .group_by(day)
    ).all()
    weighted_sum = weight_total = 0.0
    for day_value, total, count in rows:
        when = day_value if isinstance(day_value, date) else date.fromisoformat(str(day_value))
        # The middle of the day, so a mention today weighs about as much as one this morning.
        age = (until - datetime.combine(when, datetime.min.time())).total_seconds() / 86400 - 0.5
        weight = 0.5 ** (max(age, 0.0) / half_life)
        weighted_sum += weight * float(total or 0.0)
        weight_total += weight * int(count)
    return weighted_sum / weight_total if weight_total else None


def _mention_views(connection: Connection, query: Any, taxonomy: Taxonomy) -> list[MentionView]:
    rows = connection.execute(query).all()
    return [
        MentionView(
            id=r.id,
            title=r.title,
            text=r.text,
            url=r.url,
            author=r.author,
            source=r.source,
            occurred_at=r.occurred_at,
            compound=r.compound,
            label=r.label,
            rating=r.rating,
            touchpoint=taxonomy.label(r.touchpoint) if r.touchpoint else "",
            has_reply=r.owner_reply is not None,
        )
        for r in rows
    ]


def _mentions_query(touchpoint_rank0: bool = True) -> Any:
    """The columns a MentionView needs; the touchpoint is the primary one unless told otherwise."""
    assignment_join = and_(
        TouchpointAssignment.mention_id == Mention.id,
        TouchpointAssignment.rank == 0 if touchpoint_rank0 else literal(True),
    )
    return (
        select(
            Mention.id,
            Mention.title,
            Mention.text,
            Mention.url,
            Mention.author,
            Source.name.label("source"),
            Mention.occurred_at,
            TouchpointAssignment.compound.label("compound"),
            TouchpointAssignment.label.label("label"),
            Mention.rating,
            TouchpointAssignment.touchpoint.label("touchpoint"),
            Mention.owner_reply,
        )
        .join(Source, Source.id == Mention.source_id)
        .join(TouchpointAssignment, assignment_join)
    )


def _carrying_sentences(connection: Connection, views: list[MentionView]) -> None:
    """Mark, in each shown mention, the sentence whose feeling is strongest in its direction."""
    if not views:
        return
    rows = connection.execute(
        select(SentenceScore.mention_id, SentenceScore.text, SentenceScore.compound).where(
            SentenceScore.mention_id.in_({v.id for v in views})
        )
    ).all()
    by_mention: dict[int, list[tuple[str, float]]] = {}
    for mention_id, text, compound in rows:
        by_mention.setdefault(mention_id, []).append((text, compound or 0.0))
    for view in views:
        sentences = by_mention.get(view.id, [])
        if len(sentences) < 2:
            continue  # a one-sentence mention is all judgement
        sign = -1.0 if (view.compound or 0.0) < 0 else 1.0
        text, strength = max(sentences, key=lambda s: sign * s[1])
        if sign * strength > 0:
            view.sentence = text


def is_negative_review() -> ColumnElement[bool]:
    """A review that calls for a reply: 1–2 stars, or no stars and negative words.

    Stars win over words where both exist: the reviewer chose them, while the words' score can
    miss sarcasm ("Five stars for creativity in excuses").
    """
    return or_(
        Mention.rating <= LOW_RATING,
        and_(Mention.rating.is_(None), MentionScore.label == "negative"),
    )


# --------------------------------------------------------------------------- alerts


def find_alerts(
    rows: list[TouchpointRow], history: list[dict[str, Cell]], settings: DigestSettings
) -> list[tuple[TouchpointRow, str, str, float, float, float]]:
    """Touchpoints whose sentiment or volume this period lies outside their own normal.

    Normal is the mean ± ``alert_deviations`` standard deviations of the touchpoint's own past
    periods (at least three with mentions). Sentiment needs ``alert_min_mentions`` this period, so
    one review cannot raise an alarm; the spread has a floor (0.15 in compound, √mean in volume)
    so a touchpoint that never moved is not alarmed by a small wobble.
    """
    found = []
    for row in rows:
        past = [h.get(row.id, Cell()) for h in history]
        if row.now.mentions >= settings.alert_min_mentions and row.now.average is not None:
            averages = [c.average for c in past if c.average is not None and c.scored >= 1]
            if len(averages) >= 3:
                usual = statistics.fmean(averages)
                spread = max(statistics.pstdev(averages), 0.15)
                if abs(row.now.average - usual) >= settings.alert_deviations * spread:
                    direction = "down" if row.now.average < usual else "up"
                    found.append((row, "sentiment", direction, row.now.average, usual, spread))
        volumes = [float(c.mentions) for c in past]
        if len(volumes) >= 3 and sum(1 for v in volumes if v) >= 3:
            usual = statistics.fmean(volumes)
            spread = max(statistics.pstdev(volumes), math.sqrt(usual), 1.0)
            now = float(row.now.mentions)
            rose = (
                now >= settings.alert_min_mentions
                and now - usual >= settings.alert_deviations * spread
            )
            fell = (
                usual >= settings.alert_min_mentions
                and usual - now >= settings.alert_deviations * spread
            )
            if rose or fell:
                found.append((row, "volume", "up" if rose else "down", now, usual, spread))
    return found


# --------------------------------------------------------------------------- building


def _business_id(connection: Connection, business: Business) -> int | None:
    return connection.scalar(select(BusinessRow.id).where(BusinessRow.key == business.key))


def _touchpoint_rows(
    taxonomy: Taxonomy, cells: dict[tuple[int, str], Cell], periods: list[Period], ids: list[str]
) -> list[TouchpointRow]:
    now, before = len(periods) - 1, len(periods) - 2
    return [
        TouchpointRow(
            id=tp,
            label=taxonomy.label(tp),
            stage=taxonomy.stage_of(tp) or "",
            now=cells.get((now, tp), Cell()),
            before=cells.get((before, tp), Cell()),
            trend=[cells.get((i, tp), Cell()).score for i in range(len(periods))],
        )
        for tp in ids
    ]


def _sources(connection: Connection, business_id: int, period: Period) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(
            Source.id,
            Source.name,
            Source.type,
            func.count(Mention.id),
            func.avg(case((MentionScore.label != UNSUPPORTED, MentionScore.compound))),
        )
        .outerjoin(Mention, and_(Mention.source_id == Source.id, _within(period.start, period.end)))
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
            health[source_id] = (status, str((detail or {}).get("reason", "")))
    return [
        {
            "name": name,
            "type": type_,
            "mentions": int(count),
            "average": float(avg) if avg is not None else None,
            "status": health.get(source_id, ("not in the last run", ""))[0],
            "reason": health.get(source_id, ("", ""))[1],
        }
        for source_id, name, type_, count, avg in rows
    ]


def _competitor(
    connection: Connection, business: Business, period: Period, taxonomy: Taxonomy
) -> CompetitorColumn:
    business_id = _business_id(connection, business)
    if business_id is None:
        return CompetitorColumn(business.name, 0, None, {})
    cells = _cells(connection, business_id, [period])
    totals = _totals(connection, business_id, period)
    return CompetitorColumn(
        business=business.name,
        mentions=totals["total"],
        score=score_1_to_10(totals["average"]),
        by_touchpoint={tp: cell.score for (_, tp), cell in cells.items()},
    )


def build_digest(
    store: Store,
    business: Business,
    period: Period,
    taxonomy: Taxonomy,
    settings: DigestSettings | None = None,
    competitors: list[Business] | None = None,
) -> Digest:
    settings = settings or DigestSettings()
    history = period.history(settings.history_periods)
    periods = [*history, period]
    customer_ids = [
        t.id for s in taxonomy.stages for t in s.touchpoints if t.id != EMPLOYEE_TOUCHPOINT
    ]
    with store.engine.connect() as connection:
        business_id = _business_id(connection, business)
        known = business_id is not None
        bid = business_id if business_id is not None else -1
        cells = _cells(connection, bid, periods) if known else {}
        totals = _totals(connection, bid, period)
        before = _totals(connection, bid, period.previous())
        weighted = _weighted_average(
            connection, bid, periods[0], period.end, settings.half_life_days
        )
        extra_ids = sorted(
            {tp for (_, tp) in cells} - set(customer_ids) - {UNCLASSIFIED, EMPLOYEE_TOUCHPOINT}
        )
        rows = _touchpoint_rows(taxonomy, cells, periods, customer_ids + extra_ids)
        by_id = {r.id: r for r in rows}
        stages = [
            StageRow(s.id, s.label, [by_id[t.id] for t in s.touchpoints if t.id in by_id])
            for s in taxonomy.stages
            if any(t.id in by_id for t in s.touchpoints)
        ]
        if extra_ids:
            stages.append(
                StageRow("other", "No longer in the taxonomy", [by_id[t] for t in extra_ids])
            )
        [unclassified] = _touchpoint_rows(taxonomy, cells, periods, [UNCLASSIFIED])
        employee = None
        if EMPLOYEE_TOUCHPOINT in taxonomy.touchpoints:
            [employee] = _touchpoint_rows(taxonomy, cells, periods, [EMPLOYEE_TOUCHPOINT])

        history_cells = [
            {tp: cell for (i, tp), cell in cells.items() if i == index}
            for index in range(len(history))
        ]
        in_period = and_(Mention.business_id == bid, _within(period.start, period.end))
        customer = not_(_is_employee())
        alerts = []
        for row, kind, direction, now, usual, spread in find_alerts(rows, history_cells, settings):
            order = (
                TouchpointAssignment.compound.asc()
                if direction == "down"
                else TouchpointAssignment.compound.desc()
            )
            causes = _mention_views(
                connection,
                _mentions_query(touchpoint_rank0=False)
                .where(in_period, TouchpointAssignment.touchpoint == row.id)
                .order_by(order, Mention.id)
                .limit(settings.top_mentions),
                taxonomy,
            )
            alerts.append(Alert(row.id, row.label, kind, direction, now, usual, spread, causes))
        alerts.sort(key=lambda a: (a.direction != "down", a.kind != "sentiment", a.label))

        reply_from = period.end - timedelta(days=settings.reply_window_days)
        unanswered = and_(
            Mention.business_id == bid,
            _within(reply_from, period.end),
            Mention.kind == "review",
            Mention.owner_reply.is_(None),
            is_negative_review(),
        )
        needs_reply_total = int(
            connection.scalar(
                select(func.count())
                .select_from(Mention)
                .join(MentionScore, MentionScore.mention_id == Mention.id)
                .where(unanswered)
            )
            or 0
        )
        needs_reply = _mention_views(
            connection,
            _mentions_query()
            .join(MentionScore, MentionScore.mention_id == Mention.id)
            .where(unanswered)
            .order_by(Mention.occurred_at.asc(), Mention.id)
            .limit(20),
            taxonomy,
        )

        highlights = []
        for stage in taxonomy.stages:
            ids = [t.id for t in stage.touchpoints if t.id != EMPLOYEE_TOUCHPOINT]
            if not ids:
                continue
            in_stage = and_(in_period, customer, TouchpointAssignment.touchpoint.in_(ids))
            best = _mention_views(
                connection,
                _mentions_query()
                .where(in_stage, TouchpointAssignment.compound >= POSITIVE_THRESHOLD)
                .order_by(TouchpointAssignment.compound.desc(), Mention.id)
                .limit(settings.top_mentions),
                taxonomy,
            )
            worst = _mention_views(
                connection,
                _mentions_query()
                .where(in_stage, TouchpointAssignment.compound <= NEGATIVE_THRESHOLD)
                .order_by(TouchpointAssignment.compound.asc(), Mention.id)
                .limit(settings.top_mentions),
                taxonomy,
            )
            if best or worst:
                highlights.append(Highlights(stage.id, stage.label, best, worst))

        first_impressions = _mention_views(
            connection,
            _mentions_query()
            .join(MentionScore, MentionScore.mention_id == Mention.id)
            .where(in_period, customer, MentionScore.first_impression)
            .order_by(Mention.occurred_at.desc(), Mention.id)
            .limit(10),
            taxonomy,
        )
        employee_comments = _mention_views(
            connection,
            _mentions_query()
            .where(in_period, _is_employee())
            .order_by(Mention.occurred_at.desc(), Mention.id)
            .limit(6),
            taxonomy,
        )
        shown = [m for a in alerts for m in a.mentions] + [
            m for h in highlights for m in (*h.best, *h.worst)
        ]
        _carrying_sentences(connection, shown)
        sources = _sources(connection, bid, period) if known else []
        rivals = [_competitor(connection, b, period, taxonomy) for b in competitors or []]

    average = totals["average"]
    columns = []
    if rivals:
        own = CompetitorColumn(
            business.name,
            totals["total"],
            score_1_to_10(average),
            {r.id: r.now.score for r in rows},
        )
        columns = [own, *rivals]
    return Digest(
        business=business.name,
        period=period,
        previous=period.previous(),
        history=history,
        generated_at=datetime.now(UTC).replace(microsecond=0, tzinfo=None),
        total=totals["total"],
        previous_total=before["total"],
        scored=totals["scored"],
        unscored=totals["unscored"],
        average=average,
        score=score_1_to_10(average),
        previous_score=score_1_to_10(before["average"]),
        weighted_average=weighted,
        weighted_score=score_1_to_10(weighted),
        half_life_days=settings.half_life_days,
        labels=totals["labels"],
        stages=stages,
        unclassified=unclassified,
        alerts=alerts,
        needs_reply=needs_reply,
        needs_reply_total=needs_reply_total,
        highlights=highlights,
        first_impressions=first_impressions,
        first_impression_count=totals["first"],
        employee=employee,
        employee_comments=employee_comments,
        sources=sources,
        failed_sources=[s for s in sources if s["status"] == "failed"],
        competitors=columns,
        competitor_rows=[
            (row.label, scores)
            for stage in stages
            for row in stage.touchpoints
            for scores in [[c.by_touchpoint.get(row.id) for c in columns]]
            if any(s is not None for s in scores)
        ],
        rating_disagreements=totals["disagree"],
        reply_window_days=settings.reply_window_days,
    )


# --------------------------------------------------------------------------- drawing


def web_link(url: str | None) -> str | None:
    """The URL when it is a web address; ``None`` for anything a click could run or open locally."""
    if url and urlsplit(url.strip()).scheme.lower() in ("http", "https"):
        return url.strip()
    return None


def sparkline(values: list[float | None], width: int = 96, height: int = 22) -> str:
    """SVG polyline points for scores 1–10 (gaps skipped): numbers only, safe to inline."""
    points = []
    step = width / max(len(values) - 1, 1)
    for i, value in enumerate(values):
        if value is None:
            continue
        y = height - 2 - (value - 1) / 9 * (height - 4)
        points.append(f"{i * step:.1f},{y:.1f}")
    return " ".join(points)


def _signed(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(REPORTS),
        autoescape=True,  # every string from the web is escaped, whatever the template says
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["signed"] = _signed
    env.filters["score"] = lambda v: "–" if v is None else f"{v:.1f}"
    env.filters["web_link"] = web_link
    env.filters["sparkline"] = sparkline
    env.filters["stars"] = lambda r: "" if r is None else f"{1 + r * 4:.0f}★"
    env.tests["positive"] = lambda v: v is not None and v > 0
    env.tests["negative"] = lambda v: v is not None and v < 0
    return env


def render_digest(digest: Digest, template: str = "digest.html.j2") -> str:
    return environment().get_template(template).render(digest=digest)


def digest_path(config: Config, business: Business, period: Period) -> Path:
    name = period.label.replace(" ", "_")
    return Path(config.output_dir) / f"{business.key}-{name}.html"


def build_for_config(config: Config, store: Store, taxonomy: Taxonomy, period: Period) -> Digest:
    business = config.business
    rivals = [b for b in config.businesses if b is not business]
    return build_digest(store, business, period, taxonomy, config.digest, rivals)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)  # a reader never sees half a file


def write_digest(
    config: Config, store: Store, taxonomy: Taxonomy, period: Period, output: Path | None = None
) -> Path:
    """Write the HTML digest, its plain-text twin and the archive index; return the HTML's path."""
    digest = build_for_config(config, store, taxonomy, period)
    path = output or digest_path(config, config.business, period)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, render_digest(digest))
    _write_atomically(path.with_suffix(".txt"), render_digest(digest, "digest.txt.j2"))
    write_index(path.parent)
    return path


def write_index(folder: Path) -> Path:
    """``index.html``: every digest in the folder, newest period first."""
    entries = sorted(
        (p for p in folder.glob("*.html") if p.name != "index.html"),
        key=lambda p: p.stem,
        reverse=True,
    )
    html = (
        environment()
        .get_template("index.html.j2")
        .render(entries=[{"name": p.name, "title": p.stem} for p in entries])
    )
    index = folder / "index.html"
    _write_atomically(index, html)
    return index


def newest_mention(store: Store, business: Business) -> datetime | None:
    with store.engine.connect() as connection:
        return connection.scalar(
            select(func.max(Mention.occurred_at))
            .join(BusinessRow, BusinessRow.id == Mention.business_id)
            .where(BusinessRow.key == business.key)
        )
