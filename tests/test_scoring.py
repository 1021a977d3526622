"""The scoring pass, on SQLite and on PostgreSQL: every stored mention judged exactly once, by
however many scorers run at once, and a killed pass finished by the next one."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select, text

from monitor.config import parse_config
from monitor.digest import Period, write_digest
from monitor.pipeline import Ingest
from monitor.records import MentionRecord
from monitor.scoring import (
    IdleScorer,
    ScoreResult,
    score_and_map,
    score_pending,
    score_share,
)
from monitor.store import (
    Mention,
    MentionScore,
    SentenceScore,
    Store,
    TouchpointAssignment,
    create_db_engine,
)
from monitor.touchpoints import load_taxonomy
from tests.conftest import run_monitor

TAXONOMY = load_taxonomy()
OPENINGS = [
    "The staff were rude and the delivery was two weeks late.",
    "Lovely welcome at the door and the coffee was great. Will be back!",
    "Parking is impossible near the shop. Otherwise fine.",
    "Refund still not paid after a month, terrible billing. I rang three times.",
    "First visit today: the website booking was easy but the wait was long.",
]


def records(n: int, first: int = 0) -> list[MentionRecord]:
    return [
        MentionRecord(
            business="example-bakery",
            source="reviews",
            text=f"{OPENINGS[i % len(OPENINGS)]} Visit number {i}.",
            url=f"https://reviews.example/r/{i}",
            external_id=f"r-{i}",
            rating=(i % 5) / 4,
            published_at=datetime(2026, 11, 16 + i % 7, 12),
        )
        for i in range(first, first + n)
    ]


def collect(url: str, n: int, first: int = 0) -> Store:
    """A store holding ``n`` collected (stored, unscored) mentions, numbered from ``first``."""
    store = Store.open(url)
    business_id = store.business_id("example-bakery", "Example Bakery")
    ingest = Ingest(
        store, TAXONOMY, business_id, store.source_id(business_id, "reviews", "structured_data")
    )
    ingest.add_all(records(n, first))
    ingest.flush()
    assert ingest.counts["new"] == n
    return store


Judgements = dict[str, tuple[str, list[tuple[str, str, Any]], int]]


def stored_judgements(store: Store) -> Judgements:
    """Per mention (by external id): its label, its touchpoints with their labels and evidence,
    and how many sentences it has."""
    with store.engine.connect() as connection:
        labels = dict(
            connection.execute(
                select(Mention.external_id, MentionScore.label).join(
                    MentionScore, MentionScore.mention_id == Mention.id
                )
            ).all()
        )
        touchpoints: dict[str, list[tuple[str, str, Any]]] = {}
        for external_id, touchpoint, label, evidence in connection.execute(
            select(
                Mention.external_id,
                TouchpointAssignment.touchpoint,
                TouchpointAssignment.label,
                TouchpointAssignment.evidence,
            )
            .join(TouchpointAssignment, TouchpointAssignment.mention_id == Mention.id)
            .order_by(TouchpointAssignment.mention_id, TouchpointAssignment.rank)
        ):
            touchpoints.setdefault(external_id, []).append((touchpoint, label, evidence))
        sentences = Counter(
            connection.execute(
                select(Mention.external_id).join(
                    SentenceScore, SentenceScore.mention_id == Mention.id
                )
            ).scalars()
        )
    return {key: (labels[key], touchpoints.get(key, []), sentences[key]) for key in labels}


def expected_judgements(n: int) -> Judgements:
    """What judging each record directly gives (the pass must store exactly this)."""
    expected = {}
    for record in records(n):
        prepared = score_and_map(
            {"text": record.text, "language": None, "rating": record.rating, "kind": "review"},
            TAXONOMY,
        )
        expected[record.external_id or ""] = (
            prepared.score["label"],
            [(a["touchpoint"], a["label"], a["evidence"]) for a in prepared.assignments],
            len(prepared.sentences),
        )
    return expected


def row_counts(store: Store) -> tuple[int, int, int]:
    with store.engine.connect() as connection:
        return tuple(  # type: ignore[return-value]
            int(connection.scalar(select(func.count()).select_from(table)) or 0)
            for table in (MentionScore, SentenceScore, TouchpointAssignment)
        )


def test_collecting_stores_and_the_scoring_pass_judges_each_mention(db_url: str) -> None:
    store = collect(db_url, 60)
    try:
        assert store.unscored() == 60
        assert row_counts(store) == (0, 0, 0)
        result = score_pending(store, TAXONOMY, batch_size=25)
        assert result == ScoreResult(scored=60, failed=0)
        assert store.unscored() == 0
        assert stored_judgements(store) == expected_judgements(60)
        counts = row_counts(store)
        assert score_pending(store, TAXONOMY) == ScoreResult()  # a second pass has nothing to do
        assert row_counts(store) == counts
    finally:
        store.close()


def test_scorers_at_once_judge_each_mention_exactly_once(db_url: str) -> None:
    """Three scorers on the same mentions: PostgreSQL's SKIP LOCKED claims, and on both
    databases ``ON CONFLICT DO NOTHING`` on the score row, keep each judgement single."""
    store = collect(db_url, 600)
    engines = [create_db_engine(db_url) for _ in range(3)]
    results: list[ScoreResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(engines))

    def score(engine: object) -> None:
        try:
            start.wait()
            results.append(score_share(engine, TAXONOMY, batch_size=20))  # type: ignore[arg-type]
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=score, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert errors == []
        assert sum(r.scored for r in results) == 600
        assert stored_judgements(store) == expected_judgements(600)
        expected = expected_judgements(600).values()
        assert row_counts(store) == (
            600,
            sum(sentences for _, _, sentences in expected),
            sum(len(touchpoints) for _, touchpoints, _ in expected),
        )
    finally:
        for engine in engines:
            engine.dispose()
        store.close()


def test_scoring_processes_split_the_work(db_url: str) -> None:
    store = collect(db_url, 400)
    try:
        result = score_pending(store, TAXONOMY, processes=2, batch_size=50)
        assert result == ScoreResult(scored=400, failed=0)
        assert stored_judgements(store) == expected_judgements(400)
    finally:
        store.close()


def test_an_idle_worker_scores_a_batch_at_a_time(db_url: str) -> None:
    """What a worker with nothing to crawl does between looks at its queue: one batch a step,
    each mention judged once, new mentions taken up as they arrive, and then nothing to do."""
    store = collect(db_url, 120)
    try:
        scorer = IdleScorer(store, TAXONOMY, batch_size=50)
        assert [scorer.step() for _ in range(3)] == [True, True, True]
        assert store.unscored() == 0
        assert scorer.step() is False
        assert scorer.result == ScoreResult(scored=120, failed=0)
        collect(db_url, 7, first=120).close()  # stored while the worker waits
        assert scorer.step() is True
        assert scorer.step() is False
        assert scorer.result.scored == 127
        assert store.unscored() == 0
    finally:
        store.close()


def test_an_idle_scorer_that_fails_says_so_and_stops_trying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = collect(f"sqlite:///{tmp_path / 'm.db'}", 10)
    try:
        with store.engine.begin() as connection:
            connection.execute(text("DROP TABLE touchpoint_assignments"))
        scorer = IdleScorer(store, TAXONOMY)
        assert scorer.step() is False
        assert "scoring while idle failed" in caplog.text
        assert scorer.step() is False  # not tried again: the pass after the crawl reports it
        assert caplog.text.count("scoring while idle failed") == 1
        assert store.unscored() == 10  # the failed batch was rolled back whole
    finally:
        store.close()


def test_a_killed_scoring_pass_is_finished_by_the_next(db_url: str, tmp_path: Path) -> None:
    total = 5000
    collect(db_url, total).close()
    config = tmp_path / "business.yaml"
    config.write_text(
        yaml.safe_dump({"database": db_url, "businesses": [{"name": "Example Bakery"}]}),
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "monitor", "score", "--config", str(config)]
    scorer = subprocess.Popen(
        [*command, "--processes", "1"], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    store = Store.open(db_url)
    try:
        deadline = time.monotonic() + 120
        while store.unscored() == total and time.monotonic() < deadline:
            time.sleep(0.02)
        scorer.send_signal(signal.SIGKILL)
        scorer.wait(30)
        left = store.unscored()
        assert 0 < left < total, "the kill came before the first batch or after the last"
        finished = run_monitor("score", "--config", str(config), cwd=tmp_path)
        assert finished.returncode == 0, finished.stderr
        assert f"{left} mentions scored" in finished.stdout
        assert store.unscored() == 0
        assert stored_judgements(store) == expected_judgements(total)
    finally:
        store.close()


def test_the_digest_names_mentions_not_scored_yet(tmp_path: Path) -> None:
    config = parse_config(
        {
            "businesses": [{"name": "Example Bakery", "sources": []}],
            "database": f"sqlite:///{tmp_path / 'm.db'}",
            "output_dir": str(tmp_path / "digests"),
        },
        tmp_path / "business.yaml",
    )
    store = collect(config.database, 10)
    week = Period.parse_week("2026-W47")
    try:
        html = write_digest(config, store, TAXONOMY, week).read_text(encoding="utf-8")
        assert "10 mention(s) of this period are not scored yet" in html
        assert "<strong>10</strong>" in html  # counted among the period's mentions all the same
        score_pending(store, TAXONOMY)
        html = write_digest(config, store, TAXONOMY, week).read_text(encoding="utf-8")
        assert "not scored yet" not in html
    finally:
        store.close()
