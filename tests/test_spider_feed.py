"""Feeds keep only the entries that name the business, as whole words, minus look-alikes."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Site, crawl_sources


def test_atom_feed_entries_about_the_business(tmp_path: Path, site: Site) -> None:
    source = {"name": "blog", "type": "feed", "start_urls": [f"{site.url}/feed/atom.xml"]}
    crawl = crawl_sources(tmp_path, [source])
    assert crawl.result.returncode == 0, crawl.result.stderr
    rows = crawl.rows(
        "SELECT external_id, title, author, text, published_at FROM mentions ORDER BY external_id"
    )
    assert [r[0] for r in rows] == [
        "tag:leedsfood.example,2026:post-501",  # "Example Bakery" in the text
        "tag:leedsfood.example,2026:post-504",  # "@examplebakes", an alias, in another case
    ]
    # Markup is stripped and the script's content never reaches the stored text.
    assert rows[0][3] == "First on the list, Example Bakery: the staff know every regular by name."
    assert rows[0][2] == "Sam Writer"
    assert rows[0][4] == "2026-11-19 09:00:00.000000"
    # "Example Bakery Road" is excluded; "ExampleBakeryland" is not a whole-word match.
    assert crawl.stats("blog")["monitor/feed_entry_not_about_business"] == 2
