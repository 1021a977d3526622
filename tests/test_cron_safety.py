"""Unattended runs: a run killed with SIGKILL and run again stores every mention exactly once,
and a second run on the same database while one is going stops at once with exit code 75."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from sqlalchemy import create_engine, func, select

from monitor.lock import run_lock
from monitor.store import Mention, Run, Store
from tests.sites import fixture_site

PAGES, PER_PAGE = 40, 5


def _write_site(root: Path) -> None:
    """A review site whose 40 pages chain by rel=next, served slowly (0.3 s a page)."""
    (root / "slow").mkdir(parents=True)
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    for page in range(1, PAGES + 1):
        reviews = [
            {
                "@type": "Review",
                "@id": f"https://reviews.example/slow#p{page}-{n}",
                "author": f"Reviewer {page}-{n}",
                "datePublished": f"2026-{11 - page // 31:02d}-{(30 - page % 30) or 1:02d}T12:00:00Z",
                "reviewBody": f"Visit {page}-{n}: the staff were friendly and the repair was quick.",
                "reviewRating": {"@type": "Rating", "ratingValue": str(1 + (page + n) % 5)},
            }
            for n in range(PER_PAGE)
        ]
        data = {
            "@context": "https://schema.org",
            "@type": "LocalBusiness",
            "name": "Example Bakery",
            "review": reviews,
        }
        following = f'<link rel="next" href="/slow/page-{page + 1}.html">' if page < PAGES else ""
        (root / "slow" / f"page-{page}.html").write_text(
            f'<html><head><script type="application/ld+json">{json.dumps(data)}</script>{following}</head><body></body></html>'
        )


def _config(tmp_path: Path, url: str, db: str) -> Path:
    path = tmp_path / "business.yaml"
    config = {
        "database": db,
        "crawl": {"autothrottle": False, "download_delay": 0, "stop_at_known": True},
        "businesses": [
            {
                "name": "Example Bakery",
                "sources": [
                    {
                        "name": "slow-site",
                        "type": "structured_data",
                        "start_urls": [f"{url}/slow/page-1.html"],
                        "max_pages": 100,
                    }
                ],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _mentions(db: str) -> tuple[int, int]:
    engine = create_engine(db)
    with engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(Mention)) or 0
        distinct = connection.scalar(select(func.count(func.distinct(Mention.external_id)))) or 0
    engine.dispose()
    return int(total), int(distinct)


def _monitor(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_killed_run_then_rerun_stores_everything_once(tmp_path: Path, db_url: str) -> None:
    root = tmp_path / "site"
    _write_site(root)
    Store.open(db_url).close()
    with fixture_site(root, slow_seconds=0.3) as (url, _log):
        config = _config(tmp_path, url, db_url)
        first = _monitor("crawl", "--config", str(config), cwd=tmp_path)
        deadline = time.monotonic() + 60
        while _mentions(db_url)[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)  # wait for the first batch to be committed…
        stored_when_killed = _mentions(db_url)[0]
        first.send_signal(signal.SIGKILL)  # …then kill it mid-crawl, as an OOM killer would
        first.wait(30)
        assert 0 < stored_when_killed < PAGES * PER_PAGE
        second = _monitor("crawl", "--config", str(config), cwd=tmp_path)
        _, errors = second.communicate(timeout=120)
        assert second.returncode == 0, errors
    assert _mentions(db_url) == (PAGES * PER_PAGE, PAGES * PER_PAGE)
    engine = create_engine(db_url)
    with engine.connect() as connection:
        statuses = connection.execute(select(Run.status).order_by(Run.id)).scalars().all()
    engine.dispose()
    assert statuses == ["interrupted", "ok"]


def test_second_run_while_one_holds_the_database_exits_75(tmp_path: Path, db_url: str) -> None:
    root = tmp_path / "site"
    _write_site(root)
    store = Store.open(db_url)
    with fixture_site(root) as (url, log):
        config = _config(tmp_path, url, db_url)
        with run_lock(store.engine):  # a run is going on
            busy = _monitor("crawl", "--config", str(config), cwd=tmp_path)
            _, errors = busy.communicate(timeout=60)
        assert busy.returncode == 75
        assert "another run is using" in errors and "Traceback" not in errors
        assert log.requests == []  # it stopped before fetching anything
    with store.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Run)) == 0
    store.close()
