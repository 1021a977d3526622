"""Reviews published as schema.org data: JSON-LD, microdata and RDFa, each crawled for real."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Site, crawl_sources


def _source(site: Site, path: str, **extra: object) -> dict[str, object]:
    return {
        "name": "reviews",
        "type": "structured_data",
        "start_urls": [f"{site.url}{path}"],
        **extra,
    }


def test_json_ld_graph_and_nested_reviews_across_pages(tmp_path: Path, site: Site) -> None:
    crawl = crawl_sources(
        tmp_path,
        [
            _source(
                site,
                "/jsonld/page-1.html",
                owner_reply=".reply-text",
                owner_reply_date=".reply time::attr(datetime)",
            )
        ],
    )
    assert crawl.result.returncode == 0, crawl.result.stderr
    rows = crawl.rows(
        "SELECT external_id, author, title, rating, rating_raw, published_at, "
        "published_offset_minutes, owner_reply IS NOT NULL, owner_reply_at FROM mentions ORDER BY external_id"
    )
    assert [r[0].rsplit("/", 1)[-1] for r in rows] == [
        "rv-097",
        "rv-098",
        "rv-099",
        "rv-100",
        "rv-101",
    ]
    by_id = {r[0].rsplit("/", 1)[-1]: r for r in rows}
    # A @graph Review with an Organization author page and a 1–5 scale.
    assert by_id["rv-101"][1:5] == ("Amira K.", "Best sourdough in town", 1.0, "5")
    assert by_id["rv-101"][5:7] == ("2026-11-18 07:42:10.000000", 60)  # UTC, offset kept
    # Nested in a Bakery (a LocalBusiness), rated on 0–10, dated in words.
    assert by_id["rv-098"][1:5] == ("Priyanka", "Scored out of ten", 0.8, "8")
    assert by_id["rv-098"][5] == "2026-10-12 00:00:00.000000"
    # No scale given: the source's 1–5 applies; an RFC 822 date keeps its -04:00.
    assert by_id["rv-097"][3] == 0.75 and by_id["rv-097"][6] == -240
    # The owner's reply, shown in the page next to the review the @id points at.
    assert by_id["rv-100"][7] == 1 and by_id["rv-100"][8] == "2026-11-17 09:15:00.000000"
    assert by_id["rv-101"][7] == 0
    stats = crawl.stats("reviews")
    assert stats["monitor/aggregate_rating/value"] == "3.8"
    assert stats["monitor/aggregate_rating/count"] == "5"
    assert [p for p in site.log.paths() if p.startswith("/jsonld/")] == [
        "/jsonld/page-1.html",
        "/jsonld/page-2.html",
    ]


def test_microdata_with_a_plain_next_link(tmp_path: Path, site: Site) -> None:
    crawl = crawl_sources(tmp_path, [_source(site, "/microdata/index.html")])
    assert crawl.result.returncode == 0, crawl.result.stderr
    rows = crawl.rows("SELECT author, rating, text, extra FROM mentions ORDER BY published_at DESC")
    assert [(r[0], r[1]) for r in rows] == [("Ruth", 1.0), ("Guy", 0.5), ("Nadia", 1.0)]
    assert rows[1][2] == "Icing was far too sweet for us."
    assert all('"syntax": "microdata"' in r[3] for r in rows)
    assert '"reviewed": "Celebration Cake"' in rows[0][3]


def test_rdfa_reviews(tmp_path: Path, site: Site) -> None:
    crawl = crawl_sources(tmp_path, [_source(site, "/rdfa/index.html")])
    assert crawl.result.returncode == 0, crawl.result.stderr
    rows = crawl.rows("SELECT external_id, author, title, rating, text FROM mentions")
    assert rows == [
        (
            "https://guide.example/example-bakery#rdfa-1",
            "Colin",
            "Parking is a nightmare",
            0.25,
            "Good bread but there is nowhere to park nearby and the pavement is too narrow for a pram.",
        )
    ]
    touchpoints = crawl.rows("SELECT touchpoint FROM touchpoint_assignments WHERE rank = 0")
    assert touchpoints == [("location_access",)]


def test_job_board_structured_ratings_are_employee_reviews(tmp_path: Path, site: Site) -> None:
    crawl = crawl_sources(tmp_path, [_source(site, "/jobs/index.html", profile="job_board")])
    # The page carries only an EmployerAggregateRating: kept in the stats, no mention stored.
    stats = crawl.stats("reviews")
    assert stats["monitor/aggregate_rating/value"] == "3.3"
    assert crawl.rows("SELECT count(*) FROM mentions") == [(0,)]
    assert crawl.rows("SELECT status FROM source_runs") == [("empty",)]
