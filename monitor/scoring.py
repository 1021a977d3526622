"""The scoring pass: language, VADER (whole text and per sentence) and touchpoints for every
stored mention that has no judgement yet.

Collecting only stores mentions; this pass judges them afterwards, in batches, on as many
processes as the config allows. It is what ``monitor run`` and ``monitor crawl`` do after
collecting, what ``monitor score`` does alone, and what each ``monitor worker`` does once its
queues are empty, so the expensive step scales with the machines doing it:

- A batch is claimed, judged and stored in one transaction. On PostgreSQL the claim is
  ``FOR UPDATE SKIP LOCKED``, so any number of scorers share the work without waiting for each
  other; within one pass the processes also split the mentions by id.
- A score row is inserted with ``ON CONFLICT DO NOTHING`` and a mention gets sentences and
  touchpoints only with the score row it inserted: two scorers never store one mention twice.
- A killed pass loses at most the batches in flight; the next pass finds them still unscored.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
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
    if not row.get("language"):
        row["language"] = detect_language(row["text"])
    sentiment = score_text(row["text"], row["language"], row["rating"])
    return PreparedMention(
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
            for a in taxonomy.assign(sentiment, row["kind"])
        ],
    )


@dataclass
class ScoreResult:
    scored: int = 0
    failed: int = 0
    """Mentions whose judgement raised; logged with their id, left unscored for the next pass."""

    def __add__(self, other: ScoreResult) -> ScoreResult:
        return ScoreResult(self.scored + other.scored, self.failed + other.failed)


def _judge(rows: Any, taxonomy: Taxonomy, result: ScoreResult) -> list[tuple[int, PreparedMention]]:
    judged = []
    for row in rows:
        try:
            prepared = score_and_map(
                {
                    "text": row.text,
                    "language": row.language,
                    "rating": row.rating,
                    "kind": row.kind,
                },
                taxonomy,
            )
        except Exception:
            log.exception("mention %d could not be scored; it stays unscored", row.id)
            result.failed += 1
            continue
        judged.append((row.id, prepared))
    return judged


def score_share(
    engine: Engine,
    taxonomy: Taxonomy,
    share: int = 0,
    shares: int = 1,
    batch_size: int = SCORE_BATCH,
) -> ScoreResult:
    """Judge the unscored mentions whose id is ``share`` modulo ``shares``, batch by batch."""
    result = ScoreResult()
    after = 0
    while True:
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
                return result
            after = rows[-1].id
            result.scored += save_scores(connection, _judge(rows, taxonomy, result))


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
