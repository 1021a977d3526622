"""Sites without structured data, read with selectors from the config: no code per site."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Site, crawl_sources


def test_selector_site_with_numbered_pages(tmp_path: Path, site: Site) -> None:
    source = {
        "name": "forum",
        "type": "selectors",
        "start_urls": [f"{site.url}/selectors/page-1.html"],
        "page_url": f"{site.url}/selectors/page-{{page}}.html",
        "selectors": {
            "review": "li.comment",
            "id": "::attr(data-id)",
            "author": "b.who",
            "date": "span.when",
            "rating": "span.stars::attr(title)",
            "text": "div.body",
        },
        "owner_reply": "div.owner p",
        "owner_reply_date": "div.owner span.date",
    }
    crawl = crawl_sources(tmp_path, [source])
    assert crawl.result.returncode == 0, crawl.result.stderr
    rows = crawl.rows(
        "SELECT external_id, author, published_at, rating_raw, rating, text, owner_reply, owner_reply_at "
        "FROM mentions ORDER BY external_id"
    )
    assert [r[0] for r in rows] == ["forum:c-29", "forum:c-30", "forum:c-31"]
    assert rows[2][1:3] == ("jess_eats", "2026-11-02 00:00:00.000000")
    # "4 stars" is not a number: the review is kept, its rating left out and counted.
    assert rows[2][3:5] == ("4 stars", None)
    assert crawl.stats("forum")["monitor/unparsable_rating"] == 3
    # Paragraphs of one review are joined with a space.
    assert rows[2][5] == (
        "Their website says they open at 7 but the door was locked until 7:30. "
        "Worth the wait for the pastries though."
    )
    assert rows[1][6:] == ("Sorry Mo, the card reader is fixed now.", "2026-11-02 00:00:00.000000")
    # Page 3 is empty: paging stops there.
    assert [p for p in site.log.paths() if p.startswith("/selectors/")] == [
        "/selectors/page-1.html",
        "/selectors/page-2.html",
        "/selectors/page-3.html",
    ]


def test_job_board_keeps_pros_and_cons_apart(tmp_path: Path, site: Site) -> None:
    source = {
        "name": "jobs",
        "type": "selectors",
        "profile": "job_board",
        "start_urls": [f"{site.url}/jobs/index.html"],
        "selectors": {
            "review": "div.emp-review",
            "id": "::attr(id)",
            "title": "h3",
            "rating": "span.score",
            "author": "span.role",
            "date": "time::attr(datetime)",
            "pros": "div.pros",
            "cons": "div.cons",
            "advice": "div.advice",
            "text": "div.text",
        },
    }
    crawl = crawl_sources(tmp_path, [source])
    assert crawl.result.returncode == 0, crawl.result.stderr
    rows = crawl.rows(
        "SELECT m.external_id, m.kind, s.label, a.touchpoint FROM mentions m "
        "JOIN mention_scores s ON s.mention_id = m.id "
        "JOIN touchpoint_assignments a ON a.mention_id = m.id AND a.rank = 0 ORDER BY m.external_id"
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("jobs:e-5/review", "employee_review"),
        ("jobs:e-6/cons", "employee_cons"),
        ("jobs:e-6/pros", "employee_pros"),
        ("jobs:e-7/advice", "employee_advice"),
        ("jobs:e-7/cons", "employee_cons"),
        ("jobs:e-7/pros", "employee_pros"),
    ]
    labels = {r[0]: r[2] for r in rows}
    # Each part has its own sentiment: the same review's pros and cons pull apart.
    assert labels["jobs:e-7/pros"] == "positive"
    assert labels["jobs:e-6/cons"] == "negative"
    assert {r[3] for r in rows} == {"employee_experience"}
