"""The digest's numbers, checked against a crafted store whose every score is known."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import lxml.html
import pytest

from monitor.digest import Period, build_for_config, render_digest, score_1_to_10, write_digest
from monitor.touchpoints import load_taxonomy
from tests.store_builder import StoreBuilder

WEEK = Period.parse_week("2026-W47")


def midweek(week: int, hours: int = 12) -> datetime:
    return Period.iso_week(2026, week).start + timedelta(days=2, hours=hours)


@pytest.fixture
def shop(tmp_path: Path, db_url: str) -> StoreBuilder:
    """Twelve quiet weeks, then week 47: staff turn sour, the website floods, delivery steady.

    Built on SQLite and on PostgreSQL: the digest's SQL must give the same numbers on both."""
    builder = StoreBuilder(tmp_path, url=db_url)
    for week in range(35, 47):
        for n in range(4):
            builder.add(midweek(week, n), "staff_attitude", 0.6)
        for n in range(3):
            builder.add(midweek(week, n), "delivery_installation", 0.2 if n else 0.3)
        builder.add(midweek(week), "website", 0.5)
        builder.add(midweek(week), "price_value", 0.5)
    for n in range(4):
        builder.add(midweek(47, n), "staff_attitude", -0.6)
    for n in range(3):
        builder.add(midweek(47, n), "delivery_installation", 0.25)
    for n in range(10):
        builder.add(midweek(47, n), "website", 0.4)
    builder.add(midweek(47), "price_value", -0.9)  # one bad review: below the alert minimum
    return builder


def _digest(builder: StoreBuilder, period: Period = WEEK):  # type: ignore[no-untyped-def]
    return build_for_config(builder.config, builder.store, load_taxonomy(builder.config), period)


def _row(digest, touchpoint: str):  # type: ignore[no-untyped-def]
    return next(r for s in digest.stages for r in s.touchpoints if r.id == touchpoint)


def test_scores_changes_and_trend(shop: StoreBuilder) -> None:
    digest = _digest(shop)
    staff = _row(digest, "staff_attitude")
    assert staff.now.mentions == 4
    assert staff.now.score == 2.8  # 1 + 9 × (−0.6 + 1) / 2
    assert staff.before.score == 8.2  # 1 + 9 × (0.6 + 1) / 2
    assert staff.change == -5.4
    assert staff.trend == [8.2] * 12 + [2.8]
    delivery = _row(digest, "delivery_installation")
    assert delivery.before.average == pytest.approx((0.3 + 0.2 + 0.2) / 3)
    assert digest.total == 4 + 3 + 10 + 1
    expected = (4 * -0.6 + 3 * 0.25 + 10 * 0.4 - 0.9) / 18
    assert digest.average == pytest.approx(expected)
    assert digest.score == score_1_to_10(expected)
    assert digest.previous_total == 9
    # Recent weeks weigh more: week 47 is worse than the 12-week mean, so the weighted score is
    # below the plain mean of the window and above this week's.
    window_mean = (12 * (4 * 0.6 + 0.3 + 0.2 + 0.2 + 0.5 + 0.5) + 18 * expected) / (12 * 9 + 18)
    assert expected < digest.weighted_average < window_mean


def test_alerts_fire_on_unusual_moves_only(shop: StoreBuilder) -> None:
    alerts = {(a.touchpoint, a.kind, a.direction) for a in _digest(shop).alerts}
    assert ("staff_attitude", "sentiment", "down") in alerts
    assert ("website", "volume", "up") in alerts
    # Delivery moved within its own normal; price had one bad review, below the minimum of 3.
    assert not {a for a in alerts if a[0] in ("delivery_installation", "price_value")}
    staff = next(a for a in _digest(shop).alerts if a.touchpoint == "staff_attitude")
    assert len(staff.mentions) == 3 and all(m.compound == -0.6 for m in staff.mentions)


def test_first_week_has_no_history_and_no_alerts(tmp_path: Path) -> None:
    builder = StoreBuilder(tmp_path)
    for n in range(5):
        builder.add(midweek(47, n), "staff_attitude", -0.8)
    digest = _digest(builder)
    assert digest.alerts == []
    assert _row(digest, "staff_attitude").change is None
    html = render_digest(digest)
    assert "no earlier period to compare" in html


def test_empty_week_says_so(tmp_path: Path) -> None:
    builder = StoreBuilder(tmp_path)
    builder.add(midweek(40), "staff_attitude", 0.5)
    path = write_digest(builder.config, builder.store, load_taxonomy(builder.config), WEEK)
    page = lxml.html.fromstring(path.read_text(encoding="utf-8"))
    assert "No customer mentions were stored for this period." in page.text_content()
    assert (
        path.with_suffix(".txt")
        .read_text(encoding="utf-8")
        .startswith("Example Bakery: moments of truth, 2026-W47")
    )


def test_needs_a_reply_oldest_first_stars_over_words(tmp_path: Path, db_url: str) -> None:
    builder = StoreBuilder(tmp_path, url=db_url)
    old = builder.add(midweek(40), "delivery_installation", -0.7, rating=0.0)
    builder.add(midweek(41), "delivery_installation", -0.7, rating=0.0, reply="Sorry, fixed.")
    sarcastic = builder.add(midweek(46), "staff_attitude", 0.4, rating=0.0)  # 1★, "nice" words
    builder.add(midweek(46), "staff_attitude", -0.5, rating=1.0)  # 5★ with odd words: fine
    unrated = builder.add(midweek(47), "billing", -0.6)
    builder.add(midweek(47), "billing", -0.6, kind="post")  # a forum post is not a review
    digest = _digest(builder)
    assert [m.url.rsplit("/", 1)[-1] for m in digest.needs_reply] == [
        str(old),
        str(sarcastic),
        str(unrated),
    ]
    assert digest.needs_reply_total == 3


def test_employee_comments_kept_apart(tmp_path: Path, db_url: str) -> None:
    builder = StoreBuilder(tmp_path, url=db_url)
    builder.add(midweek(47), "staff_attitude", 0.5)
    builder.add(midweek(47), "employee_experience", -0.5, kind="employee_cons")
    builder.add(midweek(47), "employee_experience", 0.7, kind="employee_pros")
    digest = _digest(builder)
    assert digest.total == 1 and digest.average == 0.5
    assert digest.employee is not None and digest.employee.now.mentions == 2
    assert all(r.id != "employee_experience" for s in digest.stages for r in s.touchpoints)
    assert len(digest.employee_comments) == 2


def test_first_impressions_and_highlighted_sentence(tmp_path: Path) -> None:
    builder = StoreBuilder(tmp_path)
    builder.add(midweek(47), "greeting", 0.8, first=True, text="First visit. Lovely welcome.")
    builder.add(midweek(47), "greeting", 0.3)
    digest = _digest(builder)
    assert digest.first_impression_count == 1
    assert [m.text for m in digest.first_impressions] == ["First visit. Lovely welcome."]


def test_competitors_side_by_side(tmp_path: Path, db_url: str) -> None:
    builder = StoreBuilder(
        tmp_path,
        businesses=[
            {"name": "Example Bakery", "sources": []},
            {"name": "Rival Rolls", "competitor": True, "sources": []},
        ],
        url=db_url,
    )
    builder.add(midweek(47), "staff_attitude", 0.6)
    builder.add(midweek(47), "staff_attitude", -0.2, business="rival-rolls")
    builder.add(midweek(47), "price_value", 0.4, business="rival-rolls")
    digest = _digest(builder)
    assert [c.business for c in digest.competitors] == ["Example Bakery", "Rival Rolls"]
    assert [c.score for c in digest.competitors] == [score_1_to_10(0.6), score_1_to_10(0.1)]
    rows = dict(digest.competitor_rows)
    assert rows["Staff attitude"] == [score_1_to_10(0.6), score_1_to_10(-0.2)]
    assert rows["Price and value"] == [None, score_1_to_10(0.4)]
    page = lxml.html.fromstring(render_digest(digest))
    assert page.xpath("//h2[@id='competitors']")


def test_one_source_business_month_period(tmp_path: Path, db_url: str) -> None:
    builder = StoreBuilder(tmp_path, url=db_url)
    builder.add(datetime(2026, 10, 3), "website", 0.5)
    builder.add(datetime(2026, 10, 30), "website", -0.1)
    builder.add(datetime(2026, 9, 15), "website", 0.9)
    october = Period.month(2026, 10)
    digest = _digest(builder, october)
    assert digest.total == 2 and digest.previous.label == "2026-09" and digest.previous_total == 1
    assert [s["name"] for s in digest.sources] == ["reviews"]
    assert digest.history[0].label == "2025-10"
