"""`monitor demo` on the bundled data: what a new user sees first, checked row by row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import html5lib
import lxml.html
import pytest

from tests.conftest import run_monitor

# What the bundled demo site holds (config/demo/site), per source: 4 review pages of 10; 10
# employee reviews (10 pros, 10 cons, 5 advice sections); a forum feed of 16 posts, 12 about the
# shop; and recorded answers of Hacker News (3 of 4 hits about it), Mastodon (9), Bluesky (5 of 6)
# and Reddit (4 posts and 3 comments about it, 2 items not).
PER_SOURCE = {
    "reviews-site": 40,
    "job-board": 25,
    "cycling-forum": 12,
    "hacker-news": 3,
    "fediverse": 9,
    "bluesky": 5,
    "reddit": 7,
}
TOTAL = sum(PER_SOURCE.values())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("demo")
    result = run_monitor("demo", cwd=workdir)
    assert result.returncode == 0, result.stderr
    return workdir, result.stdout


def _db(workdir: Path) -> sqlite3.Connection:
    return sqlite3.connect(workdir / "var" / "monitor.db")


def test_prints_the_path_of_the_newest_weeks_digest(demo_run: tuple[Path, str]) -> None:
    workdir, stdout = demo_run
    printed = Path(stdout.strip().splitlines()[-1])
    assert printed == Path("var/digests/brightwater-cycles-2026-W47.html")
    assert (workdir / printed).is_file()


def test_every_mention_is_stored_once_with_scores_and_a_touchpoint(
    demo_run: tuple[Path, str],
) -> None:
    db = _db(demo_run[0])
    per_source = dict(
        db.execute(
            "SELECT s.name, count(*) FROM mentions m JOIN sources s ON s.id = m.source_id GROUP BY s.name"
        )
    )
    assert per_source == PER_SOURCE
    kinds = dict(db.execute("SELECT kind, count(*) FROM mentions GROUP BY kind"))
    assert kinds == {
        "review": 40,
        "employee_pros": 10,
        "employee_cons": 10,
        "employee_advice": 5,
        "post": 12 + 2 + 8 + 3 + 4,
        "comment": 1 + 1 + 2 + 3,
    }
    assert db.execute("SELECT count(*) FROM mention_scores").fetchone() == (TOTAL,)
    unmapped = db.execute(
        "SELECT count(*) FROM mentions m WHERE NOT EXISTS "
        "(SELECT 1 FROM touchpoint_assignments a WHERE a.mention_id = m.id AND a.rank = 0)"
    ).fetchone()
    assert unmapped == (0,)
    employee = db.execute(
        "SELECT DISTINCT a.touchpoint FROM mentions m JOIN touchpoint_assignments a "
        "ON a.mention_id = m.id WHERE m.kind LIKE 'employee_%'"
    ).fetchall()
    assert employee == [("employee_experience",)]


def test_feed_keeps_only_posts_about_the_business(demo_run: tuple[Path, str]) -> None:
    db = _db(demo_run[0])
    ids = {row[0] for row in db.execute("SELECT external_id FROM mentions WHERE kind = 'post'")}
    # The reservoir ride ("Brightwater Lake"), another shop's sale and two chats are not about it.
    for unrelated in (
        "forum-post-48270",
        "forum-post-48538",
        "forum-post-48760",
        "forum-post-48990",
    ):
        assert unrelated not in ids


def test_ratings_dates_and_replies_are_kept(demo_run: tuple[Path, str]) -> None:
    db = _db(demo_run[0])
    rating, raw, published, offset, reply = db.execute(
        "SELECT rating, rating_raw, published_at, published_offset_minutes, owner_reply "
        "FROM mentions WHERE external_id LIKE '%#r-3603'"
    ).fetchone()
    assert raw == "1" and rating == 0.0
    assert published.startswith("2026-11-")
    assert offset == 0
    assert reply.startswith("Sophie, I'm so sorry. We've had a big backlog on e-bike deliveries")
    assert reply.endswith("with a time slot. Priya")
    replies = db.execute("SELECT count(*) FROM mentions WHERE owner_reply IS NOT NULL").fetchone()
    assert replies == (12,)
    french = db.execute(
        "SELECT language FROM mentions WHERE external_id LIKE '%#r-3466'"
    ).fetchone()
    assert french == ("fr",)
    label = db.execute(
        "SELECT s.label FROM mention_scores s JOIN mentions m ON m.id = s.mention_id "
        "WHERE m.external_id LIKE '%#r-3466'"
    ).fetchone()
    assert label == ("unsupported-language",)


def test_digest_shows_real_numbers_and_links_a_known_negative(demo_run: tuple[Path, str]) -> None:
    workdir, stdout = demo_run
    html = (workdir / stdout.strip().splitlines()[-1]).read_text(encoding="utf-8")
    page = lxml.html.fromstring(html)
    db = _db(workdir)
    week_total = db.execute(
        "SELECT count(*) FROM mentions WHERE occurred_at >= '2026-11-16' AND occurred_at < '2026-11-23' "
        "AND kind NOT LIKE 'employee_%'"
    ).fetchone()[0]
    assert week_total >= 8
    # Customer mentions; employee comments are counted in their own section.
    kpi = page.xpath("//div[@class='kpi'][1]/strong/text()")
    assert kpi == [str(week_total)]
    negatives = page.xpath("//div[contains(@class,'mention neg')]")
    assert negatives, "the week's most negative mentions are listed"
    # r-3638, a cancelled order still waiting for its refund, is among them, linked to its source.
    refund = [n for n in negatives if "Cancelled, now waiting on my refund" in n.text_content()]
    assert refund
    assert refund[0].xpath(".//a/@href") == ["https://reviews.example/brightwater-cycles#r-3638"]
    assert not page.xpath("//script"), "the digest carries no script"
    html5lib.HTMLParser(strict=True).parse(html)  # raises on any HTML parse error
    rows = page.xpath("//table[1]//tr[td]")
    assert len(rows) >= 24
