"""A weekly rerun fetches only what is new: paging stops at the first page of known reviews."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import FIXTURES, crawl_sources
from tests.sites import fixture_site

NEW_REVIEW = (
    '{"@type":"Review","@id":"https://reviews.example/#/schema/Review/rv-102",'
    '"author":{"@type":"Person","name":"Noor"},"datePublished":"2026-11-21T10:00:00Z",'
    '"reviewBody":"New this week: the rye loaf is back and it is wonderful.",'
    '"reviewRating":{"@type":"Rating","ratingValue":"5"}},'
)


def _add_newer_review(root: Path) -> None:
    page = root / "jsonld" / "page-1.html"
    html = page.read_text(encoding="utf-8")
    page.write_text(
        html.replace(
            '{"@type":"Review","@id":"https://reviews.example/#/schema/Review/rv-101"',
            NEW_REVIEW + '{"@type":"Review","@id":"https://reviews.example/#/schema/Review/rv-101"',
            1,
        ),
        encoding="utf-8",
    )


def _run(tmp_path: Path, root: Path, **crawl: object) -> list[str]:
    with fixture_site(root) as (url, log):
        source = {
            "name": "reviews",
            "type": "structured_data",
            "start_urls": [f"{url}/jsonld/page-1.html"],
        }
        result = crawl_sources(tmp_path, [source], crawl=dict(crawl))
        assert result.result.returncode == 0, result.result.stderr
    return [p for p in log.paths() if p.startswith("/jsonld/")]


def test_rerun_stops_paging_at_known_reviews(tmp_path: Path) -> None:
    root = tmp_path / "site"
    shutil.copytree(FIXTURES / "sites", root)
    assert _run(tmp_path, root) == ["/jsonld/page-1.html", "/jsonld/page-2.html"]
    _add_newer_review(root)
    # Page 1 has one new review; the rest of it is known, so page 2 is not asked for.
    assert _run(tmp_path, root) == ["/jsonld/page-1.html"]
    crawl = crawl_sources(tmp_path, [])  # reads the same database
    authors = {r[0] for r in crawl.rows("SELECT author FROM mentions")}
    assert "Noor" in authors and len(authors) == 6


def test_full_crawl_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "site"
    shutil.copytree(FIXTURES / "sites", root)
    _run(tmp_path, root)
    assert _run(tmp_path, root, stop_at_known=False) == [
        "/jsonld/page-1.html",
        "/jsonld/page-2.html",
    ]
