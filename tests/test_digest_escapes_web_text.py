"""Text from the web is shown as text in the digest, never run as markup."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import lxml.html

from monitor.config import parse_config
from monitor.digest import Period, write_digest
from monitor.pipeline import Ingest
from monitor.records import MentionRecord
from monitor.scoring import score_pending
from monitor.store import Store
from monitor.touchpoints import load_taxonomy

HOSTILE = [
    ("<script>alert('x')</script> The staff were rude and the delivery was late.", None),
    (
        'Awful service "><img src=x onerror=alert(1)> never again, the staff were rude.',
        "javascript:alert(1)",
    ),
]


def test_hostile_review_text_is_escaped(tmp_path: Path) -> None:
    config = parse_config(
        {
            "businesses": [{"name": "Example Bakery", "sources": []}],
            "database": f"sqlite:///{tmp_path / 'm.db'}",
            "output_dir": str(tmp_path / "digests"),
        },
        tmp_path / "business.yaml",
    )
    store = Store.open(config.database)
    taxonomy = load_taxonomy(config)
    business_id = store.business_id("example-bakery", "Example Bakery")
    source_id = store.source_id(business_id, "reviews", "structured_data")
    ingest = Ingest(store, taxonomy, business_id, source_id)
    for i, (text, title) in enumerate(HOSTILE):
        ingest.add(
            MentionRecord(
                business="example-bakery",
                source="reviews",
                text=text,
                title=title or "<b>bold</b> & <i>title</i>",
                url=f'https://reviews.example/r/{i}" onmouseover="alert(1)',
                external_id=f"r-{i}",
                published_at=datetime(2026, 11, 17, 12, 0),
            )
        )
    ingest.flush()
    score_pending(store, taxonomy)
    path = write_digest(config, store, taxonomy, Period.parse_week("2026-W47"))
    html = path.read_text(encoding="utf-8")
    page = lxml.html.fromstring(html)
    assert not page.xpath("//script") and not page.xpath("//img")
    assert not page.xpath("//*[@onerror or @onmouseover]")
    assert "javascript:alert(1)" in page.text_content()  # shown as the title's text
    assert "<script" not in html.split("<body>", 1)[1]


def test_only_web_links_are_clickable(tmp_path: Path) -> None:
    from monitor.digest import web_link

    assert web_link("https://reviews.example/r/1") == "https://reviews.example/r/1"
    assert web_link("javascript:alert(1)") is None
    assert web_link(" JavaScript:alert(1)") is None
    assert web_link("data:text/html,<script>") is None
    assert web_link("file:///etc/passwd") is None
