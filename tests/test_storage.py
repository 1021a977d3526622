"""The store, on SQLite and on PostgreSQL: nothing stored twice, nothing lost, schema upgrades
that keep data, and writers that wait for each other instead of failing."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import func, select, text

from monitor.config import parse_config
from monitor.lock import RunInProgress, run_lock
from monitor.pipeline import Ingest
from monitor.records import MentionRecord
from monitor.scoring import rescore, score_pending
from monitor.store import (
    MIGRATIONS,
    Mention,
    MentionScore,
    Store,
    TouchpointAssignment,
    create_db_engine,
)
from monitor.touchpoints import load_taxonomy

TEXTS = [
    "The staff were rude and the delivery was two weeks late.",
    "Lovely welcome at the door and the coffee was great.",
    "Parking is impossible near the shop.",
    "Refund still not paid after a month, terrible billing.",
]


def _records(n: int, offset: int = 0) -> list[MentionRecord]:
    return [
        MentionRecord(
            business="example-bakery",
            source="reviews",
            text=f"{TEXTS[i % len(TEXTS)]} (review {i})",
            url=f"https://reviews.example/r/{i}",
            external_id=f"r-{i}",
            published_at=datetime(2026, 11, 1 + i % 20, 12),
        )
        for i in range(offset, offset + n)
    ]


def _ingest(url: str, records: list[MentionRecord], batch_size: int = 50) -> dict[str, int]:
    store = Store.open(url)
    try:
        taxonomy = load_taxonomy()
        business_id = store.business_id("example-bakery", "Example Bakery")
        source_id = store.source_id(business_id, "reviews", "structured_data")
        ingest = Ingest(store, taxonomy, business_id, source_id, batch_size=batch_size)
        ingest.add_all(records)
        ingest.flush()
        score_pending(store, taxonomy)
        return dict(ingest.counts)
    finally:
        store.close()


def _count(url: str, table: type = Mention) -> int:
    store = Store.open(url)
    try:
        with store.engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        store.close()


def test_rerun_stores_nothing_twice(db_url: str) -> None:
    first = _ingest(db_url, _records(120))
    again = _ingest(db_url, _records(150))  # 120 known, 30 new
    assert first["new"] == 120
    assert (again["new"], again["duplicate"]) == (30, 120)
    assert _count(db_url) == 150 and _count(db_url, MentionScore) == 150


def _ingest_in_child(url: str, offset: int) -> None:
    _ingest(url, _records(200, offset), batch_size=20)


def test_two_writers_at_once_store_each_mention_once(db_url: str) -> None:
    Store.open(db_url).close()  # migrate first, as `monitor` does on start
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_ingest_in_child, args=(db_url, offset)) for offset in (0, 100)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    # 0–199 and 100–299 overlap on 100–199: 300 distinct mentions, each with one score.
    assert _count(db_url) == 300
    assert _count(db_url, MentionScore) == 300


def test_sqlite_writer_waits_for_a_locked_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    Store.open(url).close()
    blocker = sqlite3.connect(tmp_path / "busy.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another program holds the write lock…
    release = threading.Timer(1.5, lambda: blocker.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    counts = _ingest(url, _records(10))  # …so this waits (busy timeout) rather than failing
    assert counts["new"] == 10
    assert time.monotonic() - started >= 1.0
    release.join()
    blocker.close()


def test_rescore_is_repeatable_and_follows_the_taxonomy(db_url: str, tmp_path: Path) -> None:
    _ingest(db_url, _records(40))
    store = Store.open(db_url)
    query = select(
        TouchpointAssignment.mention_id,
        TouchpointAssignment.touchpoint,
        TouchpointAssignment.compound,
    ).order_by(TouchpointAssignment.mention_id, TouchpointAssignment.touchpoint)
    with store.engine.connect() as connection:
        before = connection.execute(query).all()
    assert rescore(store, load_taxonomy(), batch_size=15) == 40
    with store.engine.connect() as connection:
        assert connection.execute(query).all() == before
    without_parking = parse_config(
        {
            "businesses": [{"name": "Example Bakery"}],
            "touchpoints": {"remove": ["location_access"]},
        },
        tmp_path / "b.yaml",
    )
    rescore(store, load_taxonomy(without_parking))
    with store.engine.connect() as connection:
        touchpoints = {row[1] for row in connection.execute(query)}
        scores = connection.scalar(select(func.count()).select_from(MentionScore))
    assert "location_access" in {row[1] for row in before}
    assert "location_access" not in touchpoints and scores == 40
    store.close()


def test_retention_deletes_old_mentions_and_their_scores(db_url: str) -> None:
    _ingest(db_url, _records(40))
    store = Store.open(db_url)
    deleted = store.delete_older_than(datetime(2026, 11, 11))
    store.close()
    assert deleted == 20  # days 1–10 of 20
    assert _count(db_url) == 20 and _count(db_url, MentionScore) == 20


def test_upgrade_from_the_first_schema_keeps_data(db_url: str) -> None:
    engine = create_db_engine(db_url)
    settings = AlembicConfig()
    settings.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        settings.attributes["connection"] = connection
        command.upgrade(settings, "0001")
        connection.execute(
            text("INSERT INTO businesses (id, key, name) VALUES (1, 'old', 'Old Shop')")
        )
        connection.execute(
            text("INSERT INTO sources (id, business_id, name, type) VALUES (1, 1, 'r', 'feed')")
        )
        connection.execute(
            text(
                "INSERT INTO mentions (id, dedup_key, content_hash, business_id, source_id, kind, url, text, "
                "collected_at, occurred_at, language, extra) VALUES (1, 'k', 'h', 1, 1, 'review', "
                "'https://x.example/1', 'kept through the upgrade', '2026-01-01', '2026-01-01', 'en', '{}')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO mention_scores (mention_id, compound, label, rating_disagrees, scored_at) VALUES (1, 0.5, 'positive', false, '2026-01-01')"
            )
        )
    engine.dispose()
    store = Store.open(db_url)  # upgrades to the newest revision
    with store.engine.connect() as connection:
        assert connection.execute(select(Mention.text)).scalars().all() == [
            "kept through the upgrade"
        ]
        assert connection.execute(select(MentionScore.first_impression)).scalars().all() == [False]
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) != "0001"
    store.close()


def test_run_lock_admits_one_run(db_url: str) -> None:
    store = Store.open(db_url)
    other = Store.open(db_url)
    with run_lock(store.engine), pytest.raises(RunInProgress), run_lock(other.engine):
        pass
    with run_lock(other.engine):  # released: the next run may go
        pass
    store.close()
    other.close()


def test_migrations_build_the_schema_the_models_describe(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from monitor.store import Base

    store = Store.open(db_url)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    store.close()
    assert differences == []
