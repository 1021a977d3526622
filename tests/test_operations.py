"""Operating it: status, doctor, log files and privacy, as the person running cron sees them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml

from monitor.pipeline import Ingest, hash_author
from monitor.records import MentionRecord
from monitor.store import Store
from monitor.touchpoints import load_taxonomy
from tests.conftest import Site, crawl_sources, run_monitor


def _config(tmp_path: Path, sources: list[dict[str, object]]) -> Path:
    path = tmp_path / "business.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{tmp_path / 'monitor.db'}",
                "crawl": {"autothrottle": False, "download_delay": 0, "retries": 0},
                "businesses": [{"name": "Example Bakery", "sources": sources}],
            }
        ),
        encoding="utf-8",
    )
    return path


def test_status_shows_runs_and_flags_a_failing_source(tmp_path: Path, site: Site) -> None:
    sources = [
        {"name": "good", "type": "structured_data", "start_urls": [f"{site.url}/rdfa/index.html"]},
        {
            "name": "broken",
            "type": "structured_data",
            "start_urls": [f"{site.url}/bad/missing.html"],
        },
    ]
    for _ in range(2):
        crawl = crawl_sources(tmp_path, sources, crawl={"retries": 0})
        assert crawl.result.returncode == 1  # one source failed, one did not
    result = run_monitor("status", "--config", str(tmp_path / "business.yaml"), cwd=tmp_path)
    assert result.returncode == 1  # something needs attention
    lines = result.stdout.splitlines()
    assert any(line.startswith("  #2 crawl") and "partial" in line for line in lines)
    broken = next(line for line in lines if "/broken " in line)
    assert (
        broken.startswith("!!") and "2 failure(s) in a row" in broken and "last ok never" in broken
    )
    good = next(line for line in lines if "/good " in line)
    assert good.startswith("  ") and "0 failure(s) in a row; 1 mentions" in good


def test_doctor_says_what_to_fix(tmp_path: Path, site: Site) -> None:
    config = _config(
        tmp_path,
        [
            {
                "name": "good",
                "type": "structured_data",
                "start_urls": [f"{site.url}/rdfa/index.html"],
            },
            {
                "name": "gone",
                "type": "structured_data",
                "start_urls": [f"{site.url}/bad/missing.html"],
            },
            {"name": "reddit", "type": "reddit", "subreddits": ["leeds"]},
        ],
    )
    result = run_monitor("doctor", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    out = result.stdout
    assert "ok   database:" in out and "ok   example-bakery/good reachable" in out
    assert "FAIL example-bakery/gone reachable" in out and "HTTP 404" in out
    assert "FAIL example-bakery/reddit credentials" in out and "set praw_client_id" in out
    assert out.strip().endswith("problem(s)")


def test_log_file_keeps_what_the_terminal_does_not(tmp_path: Path, site: Site) -> None:
    config = _config(
        tmp_path,
        [
            {
                "name": "good",
                "type": "structured_data",
                "start_urls": [f"{site.url}/rdfa/index.html"],
            }
        ],
    )
    log_file = tmp_path / "logs" / "monitor.log"
    result = run_monitor(
        "crawl", "--config", str(config), "--log-file", str(log_file), cwd=tmp_path
    )
    assert result.returncode == 0 and result.stderr == ""  # quiet for cron
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert any(
        "level=INFO logger=monitor " in line and "run 1 ok: 1 new mentions" in line
        for line in lines
    )


def test_authors_can_be_stored_as_pseudonyms(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MONITOR_AUTHOR_SALT", "pepper")
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    business_id = store.business_id("b", "B")
    ingest = Ingest(
        store,
        load_taxonomy(),
        business_id,
        store.source_id(business_id, "s", "feed"),
        hash_authors=True,
    )
    for n in range(2):
        ingest.add(
            MentionRecord(
                "b",
                "s",
                f"Lovely staff, visit {n}.",
                f"https://x.example/{n}",
                author="Jane Doe",
                published_at=datetime(2026, 11, 2),
            )
        )
    ingest.flush()
    with store.engine.connect() as connection:
        authors = {row[0] for row in connection.exec_driver_sql("SELECT author FROM mentions")}
    assert authors == {hash_author("Jane Doe")}  # the same person stays recognisable
    assert "Jane" not in next(iter(authors)) and next(iter(authors)).startswith("author-")
    monkeypatch.setenv("MONITOR_AUTHOR_SALT", "another")
    assert hash_author("Jane Doe") not in authors  # the salt makes it not a plain hash of the name
