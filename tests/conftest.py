"""Shared fixtures: run the real CLI in a subprocess, serve fixture sites on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sites import RequestLog, fixture_site

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def run_monitor(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed ``monitor`` command, as cron would run it (a fresh process, no terminal)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


POSTGRES_ADMIN = os.environ.get(
    "MONITOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database on the server of this machine, for this test session.

    A PostgreSQL that cannot be reached fails the tests that need it, loudly: the storage
    tests are meant to prove both databases, and a skip would hide that one was never tried.
    """
    import uuid

    import psycopg

    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN} ({exc}). The storage tests run "
            "against it as well as SQLite; start it, or point MONITOR_TEST_POSTGRES at one.",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield (
                POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
                + f"/{name}"
            )
        finally:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL (an empty schema for each test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_database")
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


# Politeness off and retries quick: these sites are ours, on 127.0.0.1.
FAST_CRAWL = {
    "autothrottle": False,
    "download_delay": 0,
    "retries": 1,
    "retry_backoff": 0.1,
    "stop_at_known": True,
}


@dataclass
class Site:
    url: str
    log: RequestLog


@dataclass
class Crawl:
    result: subprocess.CompletedProcess[str]
    db: Path

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as connection:
            return connection.execute(sql, params).fetchall()

    def stats(self, source: str) -> dict[str, Any]:
        """The crawl stats recorded for a source by the newest run."""
        found = self.rows(
            "SELECT r.detail FROM source_runs r JOIN sources s ON s.id = r.source_id "
            "WHERE s.name = ? ORDER BY r.run_id DESC LIMIT 1",
            source,
        )
        return dict(json.loads(found[0][0])) if found else {}


@pytest.fixture
def site() -> Iterator[Site]:
    """The fixture sites under tests/fixtures/sites, served on 127.0.0.1."""
    with fixture_site(FIXTURES / "sites", slow_seconds=0.3) as (url, log):
        yield Site(url, log)


def crawl_sources(
    tmp_path: Path,
    sources: list[dict[str, Any]],
    crawl: dict[str, Any] | None = None,
    business: dict[str, Any] | None = None,
    db: Path | None = None,
) -> Crawl:
    """Write a config for Example Bakery with these sources and run `monitor crawl` on it."""
    database = db or tmp_path / "monitor.db"
    config = {
        "database": f"sqlite:///{database}",
        "user_agent": "monitor-tests/1.0 (+https://example-bakery.example/contact)",
        "crawl": {**FAST_CRAWL, **(crawl or {})},
        "businesses": [
            {
                "name": "Example Bakery",
                "aliases": ["Example Bakes", "@examplebakes"],
                "exclude": ["Example Bakery Road"],
                **(business or {}),
                "sources": sources,
            }
        ],
    }
    path = tmp_path / "business.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = run_monitor("crawl", "--config", str(path), "-v", cwd=tmp_path)
    return Crawl(result, database)


@dataclass
class Collected:
    outcomes: list[Any]
    db: Path

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as connection:
            return connection.execute(sql, params).fetchall()


def collect(tmp_path: Path, sources: list[dict[str, Any]], **crawl: Any) -> Collected:
    """Run the platform clients of an Example Bakery config in this process (plain HTTP)."""
    from monitor.clients import collect_platforms
    from monitor.config import parse_config
    from monitor.scoring import score_pending
    from monitor.store import Store
    from monitor.touchpoints import load_taxonomy

    database = tmp_path / "monitor.db"
    config = parse_config(
        {
            "database": f"sqlite:///{database}",
            "user_agent": "monitor-tests/1.0 (+https://example-bakery.example/contact)",
            "crawl": {"retries": 2, "retry_backoff": 0.05, **crawl},
            "businesses": [
                {
                    "name": "Brightwater Cycles",
                    "aliases": ["Brightwater Bikes", "@brightwatercycles"],
                    "exclude": ["Brightwater Lake"],
                    "sources": sources,
                }
            ],
        },
        tmp_path / "business.yaml",
    )
    store = Store.open(config.database)
    try:
        run_id = store.start_run("test")
        taxonomy = load_taxonomy(config)
        outcomes = collect_platforms(config, store, taxonomy, run_id)
        score_pending(store, taxonomy)  # what a run does next
    finally:
        store.close()
    return Collected(outcomes, database)
