"""The scoring pass: language, VADER (whole text and per sentence) and touchpoints for every
stored mention that has no judgement yet.

Collecting only stores mentions; this pass judges them afterwards, in batches, on as many
processes as the config allows. It is what ``monitor run`` and ``monitor crawl`` do after
collecting, what ``monitor score`` does alone, and what each ``monitor worker`` does whenever
its queues are empty (``IdleScorer``), so the expensive step scales with the machines doing it:

- A batch is claimed, judged and stored in one transaction. On PostgreSQL the claim is
  ``FOR UPDATE SKIP LOCKED``, so any number of scorers share the work without waiting for each
  other; within one pass the processes also split the mentions by id.
- A score row is inserted with ``ON CONFLICT DO NOTHING`` and a mention gets sentences and
  touchpoints only with the score row it inserted: two scorers never store one mention twice.
- A killed pass loses at most the batches in flight; the next pass finds them still unscored.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from monitor.normalise import detect_language
from monitor.sentiment import score_text
from monitor.store import (
    Mention,
    PreparedMention,
    Store,
    create_db_engine,
    not_scored,
    save_scores,
    utc_now,
)
from monitor.touchpoints import Taxonomy

log = logging.getLogger(__name__)

# Mentions judged and stored per transaction.
SCORE_BATCH = 500
_COLUMNS = (Mention.id, Mention.text, Mention.language, Mention.rating, Mention.kind)


def score_and_map(row: dict[str, Any], taxonomy: Taxonomy) -> PreparedMention:
    """The expensive part: language, VADER on the text and its sentences, then touchpoints."""
    return score_and_map_many([row], taxonomy)[0]


def score_and_map_many(rows: Sequence[dict[str, Any]], taxonomy: Taxonomy) -> list[PreparedMention]:
    """``score_and_map`` for a batch of mentions: the taxonomy maps them all at once."""
    with _collector_paused():
        return _score_and_map_many(rows, taxonomy)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Judging a batch makes hundreds of thousands of small objects and frees nearly all of them
    by reference counting, while Python's cyclic collector would walk every live object (the
    learned weights too) over and over: a fifth to a quarter of the time, measured. It runs
    after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _score_and_map_many(
    rows: Sequence[dict[str, Any]], taxonomy: Taxonomy
) -> list[PreparedMention]:
    sentiments = []
    for row in rows:
        if not row.get("language"):
            row["language"] = detect_language(row["text"])
        sentiments.append(score_text(row["text"], row["language"], row["rating"]))
    mapped = taxonomy.assign_many(sentiments, [row["kind"] for row in rows])
    return [
        PreparedMention(
            row=row,
            score={
                "compound": sentiment.compound,
                "positive": sentiment.positive,
                "neutral": sentiment.neutral,
                "negative": sentiment.negative,
                "label": sentiment.label,
                "rating_disagrees": sentiment.rating_disagrees,
                "first_impression": taxonomy.is_first_impression(sentiment),
                "scored_at": utc_now(),
            },
            sentences=[
                {"position": s.position, "text": s.text, "compound": s.compound, "label": s.label}
                for s in sentiment.sentences
            ],
            assignments=[
                {
                    "touchpoint": a.touchpoint,
                    "rank": a.rank,
                    "confidence": a.confidence,
                    "compound": a.compound,
                    "label": a.label,
                    "evidence": a.evidence,
                }
                for a in assignments
            ],
        )
        for row, sentiment, assignments in zip(rows, sentiments, mapped, strict=True)
    ]


@dataclass
class ScoreResult:
    scored: int = 0
    failed: int = 0
    """Mentions whose judgement raised; logged with their id, left unscored for the next pass."""

    def __add__(self, other: ScoreResult) -> ScoreResult:
        return ScoreResult(self.scored + other.scored, self.failed + other.failed)


def _judge(rows: Any, taxonomy: Taxonomy, result: ScoreResult) -> list[tuple[int, PreparedMention]]:
    ids = [row.id for row in rows]
    items = [
        {"text": row.text, "language": row.language, "rating": row.rating, "kind": row.kind}
        for row in rows
    ]
    try:
        return list(zip(ids, score_and_map_many(items, taxonomy), strict=True))
    except Exception:
        log.warning("a batch could not be scored at once; scoring its mentions one by one")
    # One mention spoilt the batch: judge each alone, so that only it is left unscored.
    judged = []
    for mention_id, item in zip(ids, items, strict=True):
        try:
            judged.append((mention_id, score_and_map(item, taxonomy)))
        except Exception:
            log.exception("mention %d could not be scored; it stays unscored", mention_id)
            result.failed += 1
    return judged


def score_share(
    engine: Engine,
    taxonomy: Taxonomy,
    share: int = 0,
    shares: int = 1,
    batch_size: int = SCORE_BATCH,
) -> ScoreResult:
    """Judge the unscored mentions whose id is ``share`` modulo ``shares``, batch by batch."""
    with long_lived_frozen():
        return _score_share(engine, taxonomy, share, shares, batch_size)


def freeze_long_lived() -> None:
    """Tell Python's cyclic collector not to walk again what is alive now (the taxonomy and its
    weights, the modules): it lives as long as the scoring (or the whole command) does."""
    gc.collect()  # garbage of before is not kept
    gc.freeze()


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """For a scoring pass: what is alive when it starts is frozen (``freeze_long_lived``) so the
    collector does not walk it after every batch; it is given back at the end."""
    freeze_long_lived()
    try:
        yield
    finally:
        gc.unfreeze()


def _score_share(
    engine: Engine, taxonomy: Taxonomy, share: int, shares: int, batch_size: int
) -> ScoreResult:
    result = ScoreResult()
    after: int | None = 0
    while after is not None:
        after = score_batch(engine, taxonomy, result, after, share, shares, batch_size)
    return result


def score_batch(
    engine: Engine,
    taxonomy: Taxonomy,
    result: ScoreResult,
    after: int = 0,
    share: int = 0,
    shares: int = 1,
    batch_size: int = SCORE_BATCH,
) -> int | None:
    """Claim, judge and store one batch of the unscored mentions (of this share) whose id is
    above ``after``; adds to ``result`` and returns the batch's last id, or None if none waited."""
    stmt = (
        select(*_COLUMNS)
        .where(Mention.id > after, not_scored())
        .order_by(Mention.id)
        .limit(batch_size)
    )
    if shares > 1:
        stmt = stmt.where(Mention.id % shares == share)
    if engine.dialect.name == "postgresql":
        # Rows another scorer holds are skipped, not waited for; the lock lasts until this
        # batch's scores are committed.
        stmt = stmt.with_for_update(of=Mention, skip_locked=True)
    with engine.begin() as connection:
        rows = connection.execute(stmt).all()
        if not rows:
            return None
        result.scored += save_scores(connection, _judge(rows, taxonomy, result))
        return int(rows[-1].id)


class IdleScorer:
    """A crawling process's share of the scoring, done while its crawl has nothing to fetch.

    A worker whose queue is empty would otherwise only wait (for other workers' pages, or for
    its ``--idle`` seconds to pass) before scoring. Its spiders call ``step`` instead, one batch
    at a time, so the crawl resumes between batches as soon as requests come back. One per
    process, shared by its spiders, so two of them never judge the same batch.
    """

    def __init__(self, store: Store, taxonomy: Taxonomy, batch_size: int = SCORE_BATCH) -> None:
        self.store = store
        self.taxonomy = taxonomy
        self.batch_size = batch_size
        self.result = ScoreResult()
        self.after = 0
        self.broken = False

    def step(self) -> bool:
        """Score one batch; False if none was waiting (or scoring failed: it is logged, and the
        worker's scoring pass after the crawl tries again)."""
        if self.broken:
            return False
        try:
            after = score_batch(
                self.store.engine,
                self.taxonomy,
                self.result,
                after=self.after,
                batch_size=self.batch_size,
            )
        except Exception:
            log.exception("scoring while idle failed; the rest waits for the pass after the crawl")
            self.broken = True
            return False
        if after is None:
            return False
        self.after = after
        return True


_worker_taxonomy: Taxonomy | None = None


def _start_worker(taxonomy: Taxonomy) -> None:
    global _worker_taxonomy
    _worker_taxonomy = taxonomy


def _score_share_in_worker(url: str, share: int, shares: int, batch_size: int) -> ScoreResult:
    assert _worker_taxonomy is not None
    engine = create_db_engine(url)
    try:
        return score_share(engine, _worker_taxonomy, share, shares, batch_size)
    finally:
        engine.dispose()


def score_pending(
    store: Store, taxonomy: Taxonomy, processes: int = 1, batch_size: int = SCORE_BATCH
) -> ScoreResult:
    """Judge every stored mention that has no judgement yet; returns what was done.

    With ``processes`` > 1 and enough waiting to be worth starting them (two batches a
    process), the mentions are split by id among that many scoring processes ("spawn", not
    fork: the caller may be a Scrapy process with threads and a reactor).
    """
    pending = store.unscored()
    if pending == 0:
        return ScoreResult()
    shares = max(1, min(processes, pending // (2 * batch_size)))
    if shares == 1 or ":memory:" in store.url:
        result = score_share(store.engine, taxonomy, batch_size=batch_size)
    else:
        with ProcessPoolExecutor(
            max_workers=shares,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(taxonomy,),
        ) as pool:
            futures = [
                pool.submit(_score_share_in_worker, store.url, share, shares, batch_size)
                for share in range(shares)
            ]
            result = ScoreResult()
            for future in futures:
                result += future.result()
    log.info(
        "scored %d mentions%s",
        result.scored,
        f", {result.failed} could not be scored" if result.failed else "",
    )
    return result


def rescore(store: Store, taxonomy: Taxonomy, batch_size: int = SCORE_BATCH) -> int:
    """Score and map every stored mention again (after a taxonomy or lexicon change).

    Batch by batch, each replaced in one transaction: a killed rescore leaves every mention with
    either its old or its new judgement, never none; running it twice gives the same result.
    """
    done = 0
    after = 0
    result = ScoreResult()
    while True:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(*_COLUMNS).where(Mention.id > after).order_by(Mention.id).limit(batch_size)
            ).all()
        if not rows:
            return done
        batch = _judge(rows, taxonomy, result)
        store.replace_scores(batch)
        done += len(batch)
        after = rows[-1].id
