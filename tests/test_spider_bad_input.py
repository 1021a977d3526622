"""The web's worst pages: each problem is logged with its URL, counted, and survived.

Every case crawls next to a good page, so "the crawl continues" is checked by the good page's
review being stored; a database that already holds mentions is checked to hold them unchanged.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Site, crawl_sources

GOOD_PAGE = "/bad/invalid-jsonld.html"  # its second JSON-LD block is valid: one review


def _crawl(tmp_path: Path, site: Site, *paths: str, db: Path | None = None):  # type: ignore[no-untyped-def]
    source = {
        "name": "reviews",
        "type": "structured_data",
        "start_urls": [f"{site.url}{p}" for p in paths],
        "max_pages": 1,
    }
    return crawl_sources(tmp_path, [source], db=db)


@pytest.mark.parametrize(
    ("path", "counter", "logged"),
    [
        ("/bad/missing.html", "monitor/request_failed/http_404", "HTTP 404"),
        ("/bad/error.html", "monitor/request_failed/http_500", "HTTP 500"),
        ("/bad/loop-a.html", "monitor/request_failed/redirect_loop", "too many redirects"),
        ("/bad/huge.html", "monitor/request_failed/page_too_large", "could not fetch a page"),
        ("/private/reviews.html", "monitor/request_failed/robots_txt", "forbidden by robots.txt"),
        ("/bad/invalid-jsonld.html", "monitor/invalid_json_ld", "not valid JSON"),
        ("/bad/out-of-scale.html", "monitor/rating_out_of_scale", "outside its scale 1.0–5.0"),
        ("/bad/undated.html", "monitor/undated", "has no date"),
    ],
    ids=[
        "404",
        "500",
        "redirect-loop",
        "10MB-page",
        "robots",
        "invalid-json-ld",
        "rating-off-scale",
        "undated",
    ],
)
def test_problem_is_logged_counted_and_survived(
    tmp_path: Path, site: Site, path: str, counter: str, logged: str
) -> None:
    crawl = _crawl(tmp_path, site, path, GOOD_PAGE)
    stats = crawl.stats("reviews")
    assert stats.get(counter, 0) >= 1, stats
    problem_lines = [line for line in crawl.result.stderr.splitlines() if logged in line]
    assert problem_lines and path in problem_lines[0]
    assert "Traceback" not in crawl.result.stderr
    stored = {r[0] for r in crawl.rows("SELECT external_id FROM mentions")}
    assert "https://reviews.example/invalid#2" in stored  # the good page still counted


def test_unreachable_source_fails_with_its_reason(tmp_path: Path, site: Site) -> None:
    crawl = _crawl(tmp_path, site, "/bad/missing.html")
    assert crawl.result.returncode == 3  # nothing could be collected
    assert crawl.rows("SELECT status FROM source_runs") == [("failed",)]
    assert "source example-bakery/reviews failed" in crawl.result.stderr


def test_review_kept_when_its_rating_is_off_scale_or_date_missing(
    tmp_path: Path, site: Site
) -> None:
    crawl = _crawl(tmp_path, site, "/bad/out-of-scale.html", "/bad/undated.html")
    rows = dict(crawl.rows("SELECT external_id, rating_raw FROM mentions"))
    assert rows == {
        "https://reviews.example/scale#1": "7",
        "https://reviews.example/undated#1": "4",
    }
    assert crawl.rows("SELECT rating FROM mentions WHERE rating_raw = '7'") == [(None,)]
    undated = crawl.rows(
        "SELECT published_at, occurred_at = collected_at FROM mentions WHERE rating_raw = '4'"
    )
    assert undated == [(None, 1)]


def test_review_without_text_is_dropped_and_counted(tmp_path: Path, site: Site) -> None:
    crawl = _crawl(tmp_path, site, "/bad/no-text.html")
    assert crawl.rows("SELECT external_id FROM mentions") == [("https://reviews.example/notext#2",)]
    assert crawl.stats("reviews")["drop_item/empty_text"] == 1


def test_broken_html_and_latin1_pages_are_read(tmp_path: Path, site: Site) -> None:
    crawl = _crawl(tmp_path, site, "/bad/broken.html", "/bad/latin1.html")
    texts = dict(crawl.rows("SELECT author, text FROM mentions"))
    assert texts["Ivy"].endswith("lovely scones.")
    assert texts["Zoë"] == "The café was spotless and the crème brûlée superb, £5 well spent."


def test_bad_pages_leave_stored_mentions_untouched(tmp_path: Path, site: Site) -> None:
    db = tmp_path / "kept.db"
    first = _crawl(tmp_path, site, "/jsonld/page-1.html", db=db)
    assert first.result.returncode == 0, first.result.stderr
    with sqlite3.connect(db) as connection:
        before = connection.execute("SELECT * FROM mentions ORDER BY id").fetchall()
        scores_before = connection.execute(
            "SELECT * FROM mention_scores ORDER BY mention_id"
        ).fetchall()
    assert len(before) == 3
    second = _crawl(
        tmp_path,
        site,
        "/bad/missing.html",
        "/bad/error.html",
        "/bad/loop-a.html",
        "/bad/huge.html",
        "/bad/broken.html",
        db=db,
    )
    assert second.result.returncode == 0, (
        second.result.stderr
    )  # the broken page still gave a review
    with sqlite3.connect(db) as connection:
        after = connection.execute("SELECT * FROM mentions ORDER BY id").fetchall()
        scores_after = connection.execute(
            "SELECT * FROM mention_scores ORDER BY mention_id"
        ).fetchall()
    assert after[: len(before)] == before
    assert scores_after[: len(scores_before)] == scores_before
    assert len(after) == len(before) + 1
