"""Digest speed and memory on a large store: one weekly digest over 1,000,000 stored mentions.

Builds (or reuses, when one was already built with the same parameters) a SQLite store made by
``monitor.store.Store.open`` (so Alembic makes the schema) holding two years of mentions, ending
2026-11-22, for three businesses (60 % / 25 % / 15 %), each with 3–5 sources. Every mention gets
its ``mention_scores`` row, 1–4 ``sentence_scores`` rows and 1–3 ``touchpoint_assignments`` rows
(rank 0 primary, then secondaries) drawn from the default taxonomy; compounds come from a seeded
distribution that drifts over time (with a delivery slump and a queue surge in the last weeks,
so the digest has alerts to explain); ~10 % are job-board comments (``employee_pros`` /
``employee_cons``, touchpoint ``employee_experience``), ~30 % of reviews carry an owner reply,
~10 % of customer mentions are first impressions. Rows go in with SQLAlchemy Core ``insert``
executemany, 20,000 mentions (and their child rows) per transaction, then ``ANALYZE``.

Then, each round in a fresh subprocess (so its memory is the digest's own), it times what
``monitor digest --week 2026-W47`` does for the largest business (competitors: the other two):
``write_digest`` in a cold process, then ``build_digest`` alone and the rendering alone, and
reads the peak RSS. As a baseline measured in the same process: ``SELECT count(*) FROM
mentions`` and one GROUP BY touchpoint over the week's rows.

    .venv/bin/python bench/digest.py [--db PATH] [--mentions 1000000] [--rounds 3] [--profile]
                                     [--without-stats] [--try-index 'TABLE(COLUMN, ...)']

``--profile`` (automatic when a target is missed) replays every SQL statement the digest issues,
times each, prints the query plan of the slowest and where Python time goes (cProfile).
``--without-stats`` measures again with ANALYZE's statistics deleted, as in a store ``monitor``
itself made (it never runs ANALYZE), then restores them. ``--try-index`` creates the index on
the bench store, analyses it, measures again (and without statistics too) and drops it.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import random
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import package_version, shown_path  # noqa: E402

# What the store holds.
DEFAULT_MENTIONS = 1_000_000
LAST_DAY = date(2026, 11, 22)
DAYS = 730
SEED = 20261123
BATCH_MENTIONS = 20_000
# Bump when the generated rows change, so a cached store built by older code is not reused.
GENERATOR_VERSION = 1
# What is measured, and the targets.
WEEK = "2026-W47"
TARGET_SECONDS = 2.0
TARGET_MB = 200.0
# Volume grows over the two years: the last day sees (1 + GROWTH) × the first day's mentions.
GROWTH = 0.8

# (name, share of all mentions, sources as (name, type, share of the business's mentions)).
BUSINESSES: tuple[tuple[str, float, tuple[tuple[str, str, float], ...]], ...] = (
    (
        "Brightwater Cycles",
        0.60,
        (
            ("reviews-site", "structured_data", 0.40),
            ("maps-reviews", "selectors", 0.25),
            ("job-board", "selectors", 0.10),
            ("reddit", "reddit", 0.15),
            ("mastodon", "mastodon", 0.10),
        ),
    ),
    (
        "Pedal and Chain",
        0.25,
        (
            ("reviews-site", "structured_data", 0.55),
            ("job-board", "selectors", 0.10),
            ("reddit", "reddit", 0.20),
            ("news-feed", "feed", 0.15),
        ),
    ),
    (
        "Northside Bikes",
        0.15,
        (
            ("reviews-site", "structured_data", 0.65),
            ("job-board", "selectors", 0.10),
            ("reddit", "reddit", 0.25),
        ),
    ),
)
# The source the last crawl could not reach, so the digest's warning is drawn too.
FAILED_SOURCE = ("Brightwater Cycles", "maps-reviews", "HTTP 403 from the site (blocked)")
REPLY_SHARE = 0.30
FIRST_IMPRESSION_SHARE = 0.10
UNCLASSIFIED_SHARE = 0.08
OTHER_LANGUAGE_SHARE = 0.04
SENTENCES_PER_MENTION = ((1, 0.20), (2, 0.35), (3, 0.30), (4, 0.15))
ASSIGNMENTS_PER_MENTION = ((1, 0.45), (2, 0.35), (3, 0.20))

# ---------------------------------------------------------------------------------------------
# Texts: sentences about each touchpoint, built from the taxonomy's own phrases
# ---------------------------------------------------------------------------------------------

OPENERS = (
    "Honestly,",
    "I have to say",
    "On our second visit",
    "When I went in last week",
    "To be fair,",
    "Just so you know,",
    "Overall",
    "My partner noticed that",
    "As a regular customer I think",
    "Compared with other shops,",
)
POSITIVE_TAILS = (
    "was excellent and made the whole thing easy.",
    "was really good, friendly and quick, would recommend.",
    "went better than expected, thank you so much.",
    "was great value and the team clearly cares.",
    "was spot on, no complaints at all from me.",
)
NEGATIVE_TAILS = (
    "was a real letdown and nobody seemed to care.",
    "was terrible, slow and frankly quite rude.",
    "was disappointing and took far too long to sort out.",
    "was awful, I will not be going back.",
    "went wrong twice and we were left waiting with no update.",
)
NEUTRAL_TAILS = (
    "was about what you would expect for the area.",
    "was fine, nothing special either way.",
    "is something they mention on the receipt.",
    "was handled on a Tuesday afternoon.",
)
OTHER_LANGUAGE = (
    "Le vélo est arrivé à temps et le service était correct.",
    "Das Geschäft war voll, aber die Beratung war gut.",
    "La entrega tardó una semana más de lo prometido.",
)
REPLIES = (
    "Thank you for taking the time to write this. We are sorry about the wait and have passed "
    "your comments to the workshop team; please ask for Sam next time you are in.",
    "Thanks so much for the kind words! We are glad the bike is running well.",
    "We are sorry to hear this. Please call the shop so we can put it right.",
)
TITLES = ("Great shop", "Would not recommend", "Mixed experience", "Quick service", "Long wait")
FIRST_NAMES = ("Amira", "Ben", "Chloe", "Dan", "Elif", "Fatima", "George", "Hannah", "Imran")
LAST_INITIALS = tuple("ABCDEFGHJKLMNPRSTW")
ROLES = ("Bike mechanic", "Sales assistant", "Store manager", "Delivery driver", "Customer advisor")
UNSUPPORTED = "unsupported-language"


def label_for(compound: float) -> str:
    # VADER's authors' thresholds, as monitor.sentiment uses them.
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


class Generator:
    """Seeded rows for one store: same parameters, same rows, batch after batch."""

    def __init__(
        self, mentions: int, seed: int, sources: list[list[tuple[int, str, str, float]]]
    ) -> None:
        from monitor.touchpoints import EMPLOYEE_TOUCHPOINT, UNCLASSIFIED, load_taxonomy

        self.rng = rng = random.Random(seed)
        self.mentions = mentions
        self.sources = sources
        self.source_cumulative = [list(accumulate(s[3] for s in srcs)) for srcs in sources]
        self.business_cumulative = list(accumulate(share for _, share, _ in BUSINESSES))
        self.employee_touchpoint = EMPLOYEE_TOUCHPOINT
        self.unclassified = UNCLASSIFIED
        taxonomy = load_taxonomy()
        self.customer_touchpoints = [t for t in taxonomy.touchpoints if t != EMPLOYEE_TOUCHPOINT]
        # Some touchpoints are talked about far more than others (a Zipf-like popularity).
        popularity = [1.0 / (1 + i) ** 0.8 for i in range(len(self.customer_touchpoints))]
        rng.shuffle(popularity)
        self.touchpoint_cumulative = list(accumulate(popularity))
        self.start = datetime.combine(LAST_DAY, datetime.min.time()) - timedelta(days=DAYS - 1)
        self.end = datetime.combine(LAST_DAY, datetime.min.time()) + timedelta(days=1)
        self.span = (self.end - self.start).total_seconds()
        # Each (business, touchpoint) has its own level, seasonal swing and trend.
        self.drift: dict[tuple[int, str], tuple[float, float, float, float]] = {}
        for b in range(len(BUSINESSES)):
            for tp in [*self.customer_touchpoints, EMPLOYEE_TOUCHPOINT, UNCLASSIFIED]:
                self.drift[(b, tp)] = (
                    rng.uniform(-0.15, 0.45),  # level
                    rng.uniform(0.03, 0.20),  # seasonal amplitude
                    rng.uniform(0, 2 * math.pi),  # phase
                    rng.uniform(-0.25, 0.25),  # change over the two years
                )
        self.sentences: dict[tuple[str, str], list[str]] = {}
        for tp_id, touchpoint in taxonomy.touchpoints.items():
            phrases = [p for p in touchpoint.phrases if len(p) > 3] or [touchpoint.label.lower()]
            for polarity, tails in (
                ("positive", POSITIVE_TAILS),
                ("negative", NEGATIVE_TAILS),
                ("neutral", NEUTRAL_TAILS),
            ):
                self.sentences[(tp_id, polarity)] = [
                    f"{rng.choice(OPENERS)} the {rng.choice(phrases)} {rng.choice(tails)}"
                    for _ in range(40)
                ]
        for polarity, tails in (
            ("positive", POSITIVE_TAILS),
            ("negative", NEGATIVE_TAILS),
            ("neutral", NEUTRAL_TAILS),
        ):
            self.sentences[(UNCLASSIFIED, polarity)] = [
                f"{rng.choice(OPENERS)} it {rng.choice(tails)}" for _ in range(20)
            ]
        # The incidents of the last weeks: deliveries slump for the largest business over the
        # last two weeks, and its queues are talked about far more in the measured week.
        self.slump_from = self.end - timedelta(days=14)
        self.surge_from = self.end - timedelta(days=7)
        # A crawl every morning at 06:00 UTC collects what appeared since the one before.
        self.first_run = self.start + timedelta(hours=6)
        self.run_times = [self.first_run + timedelta(days=i) for i in range(DAYS + 1)]
        self.collected: Counter[tuple[int, int]] = Counter()  # (run id, source id) → new
        self.times = self._times()
        self.sentence_id = 0
        self.assignment_id = 0

    def _times(self) -> list[float]:
        """Seconds after ``start``, sorted: volume grows linearly over the span."""
        rng, g = self.rng, GROWTH
        # Inverse of the CDF of a density proportional to 1 + g·t/T.
        times = [
            self.span * (math.sqrt(1 + g * (2 + g) * rng.random()) - 1) / g
            for _ in range(self.mentions)
        ]
        times.sort()
        return times

    def compound_mean(self, business: int, touchpoint: str, moment: datetime, t: float) -> float:
        level, amplitude, phase, change = self.drift[(business, touchpoint)]
        year = t / (365.25 * 86400)
        mean = level + amplitude * math.sin(2 * math.pi * year + phase) + change * t / self.span
        if business == 0 and touchpoint == "delivery_installation" and moment >= self.slump_from:
            mean -= 0.7
        return mean

    def batch(self, first: int, stop: int) -> Batch:
        """The rows of mentions ``first`` … ``stop - 1`` (0-based), ids assigned here."""
        rng = self.rng
        random_, gauss = rng.random, rng.gauss

        def draw(items: Sequence[Any]) -> Any:
            return items[int(random_() * len(items))]

        mentions: list[dict[str, Any]] = []
        scores: list[dict[str, Any]] = []
        sentences: list[dict[str, Any]] = []
        assignments: list[dict[str, Any]] = []
        start, times, run_times = self.start, self.times, self.run_times
        last_run = len(run_times) - 1
        tp_names, tp_cumulative = self.customer_touchpoints, self.touchpoint_cumulative
        tp_total = tp_cumulative[-1]
        employee_tp, unclassified = self.employee_touchpoint, self.unclassified
        latest_reply = self.end - timedelta(seconds=1)
        for index in range(first, stop):
            mention_id = index + 1
            t = times[index]
            occurred = start + timedelta(seconds=int(t))
            business = bisect_right(self.business_cumulative, random_())
            business = min(business, len(BUSINESSES) - 1)
            cumulative = self.source_cumulative[business]
            source_id, source_name, source_type, _ = self.sources[business][
                min(bisect_right(cumulative, random_() * cumulative[-1]), len(cumulative) - 1)
            ]
            if source_name == "job-board":
                kind = "employee_pros" if random_() < 0.5 else "employee_cons"
            elif source_type in ("reddit", "mastodon"):
                kind = "comment" if random_() < 0.3 else "post"
            elif source_type == "feed":
                kind = "post"
            else:
                kind = "review"
            employee = kind.startswith("employee")
            scored = random_() >= OTHER_LANGUAGE_SHARE
            # Which touchpoints, primary first.
            if employee:
                touchpoints = [employee_tp]
            elif random_() < UNCLASSIFIED_SHARE:
                touchpoints = [unclassified]
            else:
                wanted = pick(random_(), ASSIGNMENTS_PER_MENTION)
                touchpoints = []
                if business == 0 and occurred >= self.surge_from and random_() < 0.12:
                    touchpoints.append("waiting_speed")
                while len(touchpoints) < wanted:
                    tp = tp_names[bisect_right(tp_cumulative, random_() * tp_total)]
                    if tp not in touchpoints:
                        touchpoints.append(tp)
            run_index = min(max((occurred - self.first_run).days + 1, 0), last_run)
            collected_at = run_times[run_index]
            self.collected[(run_index + 1, source_id)] += 1
            # Sentences, each about one of the mention's touchpoints.
            n_sentences = pick(random_(), SENTENCES_PER_MENTION)
            tp_compound = {
                tp: clip(gauss(self.compound_mean(business, tp, occurred, t), 0.35))
                for tp in touchpoints
            }
            texts: list[str] = []
            by_tp: dict[str, list[float]] = {}
            for position in range(n_sentences):
                tp = touchpoints[position % len(touchpoints)]
                compound: float | None = None
                if scored:
                    compound = round(clip(gauss(tp_compound[tp], 0.2)), 4)
                    label = label_for(compound)
                    sentence = draw(self.sentences[(tp, label)])
                    by_tp.setdefault(tp, []).append(compound)
                else:
                    label = UNSUPPORTED
                    sentence = draw(OTHER_LANGUAGE)
                texts.append(sentence)
                self.sentence_id += 1
                sentences.append(
                    {
                        "id": self.sentence_id,
                        "mention_id": mention_id,
                        "position": position,
                        "text": sentence,
                        "compound": compound,
                        "label": label,
                    }
                )
            for rank, tp in enumerate(touchpoints):
                values = by_tp.get(tp)
                tp_value: float | None = None
                if not scored:
                    tp_label = UNSUPPORTED
                else:
                    # More touchpoints than sentences: a secondary rides on a shared sentence.
                    tp_value = round(sum(values) / len(values) if values else tp_compound[tp], 4)
                    tp_label = label_for(tp_value)
                if tp == employee_tp:
                    evidence: list[dict[str, Any]] = [
                        {"sentence": None, "text": None, "terms": [f"source kind: {kind}"]}
                    ]
                elif tp == unclassified:
                    evidence = [{"sentence": None, "text": None, "terms": []}]
                else:
                    position = rank % n_sentences
                    evidence = [
                        {
                            "sentence": position,
                            "text": texts[position],
                            "terms": [texts[position].split()[-3].strip(",.").lower()],
                        }
                    ]
                low, high = (0.55, 0.97) if rank == 0 else (0.35, 0.7)
                self.assignment_id += 1
                assignments.append(
                    {
                        "id": self.assignment_id,
                        "mention_id": mention_id,
                        "touchpoint": tp,
                        "rank": rank,
                        "confidence": round(low + (high - low) * random_(), 3),
                        "compound": tp_value,
                        "label": tp_label,
                        "evidence": evidence,
                    }
                )
            text = " ".join(texts)
            mention_compound: float | None = None
            if scored:
                values = [c for cs in by_tp.values() for c in cs]
                # A whole text reads a little stronger than its average sentence.
                mention_compound = round(clip(1.2 * sum(values) / len(values)), 4)
                mention_label = label_for(mention_compound)
            else:
                mention_label = UNSUPPORTED
            c = mention_compound or 0.0
            rating = rating_raw = None
            if kind == "review" or employee:
                stars = min(5, max(1, round(3 + 2.2 * c + gauss(0, 0.7))))
                rating, rating_raw = (stars - 1) / 4, f"{stars}/5"
            reply = reply_at = None
            if kind == "review" and random_() < REPLY_SHARE:
                reply = draw(REPLIES)
                reply_at = min(occurred + timedelta(hours=2 + 148 * random_()), latest_reply)
            disagrees = rating is not None and (
                (rating >= 0.75 and c <= -0.5) or (rating <= 0.25 and c >= 0.5)
            )
            mentions.append(
                {
                    "id": mention_id,
                    "dedup_key": hashlib.sha256(f"{SEED}:{mention_id}".encode()).hexdigest(),
                    "content_hash": hashlib.sha256(text.encode()).hexdigest(),
                    "business_id": business + 1,
                    "source_id": source_id,
                    "run_id": run_index + 1,
                    "kind": kind,
                    "external_id": f"{source_name}:{mention_id}",
                    "url": f"https://{source_name}.example/{business + 1}/r/{mention_id}",
                    "title": draw(TITLES) if kind == "review" and random_() < 0.5 else None,
                    "text": text,
                    "author": draw(ROLES)
                    if employee
                    else f"{draw(FIRST_NAMES)} {draw(LAST_INITIALS)}.",
                    "rating": rating,
                    "rating_raw": rating_raw,
                    "published_at": occurred,
                    "published_offset_minutes": 0,
                    "collected_at": collected_at,
                    "occurred_at": occurred,
                    "language": "en" if scored else "fr",
                    "owner_reply": reply,
                    "owner_reply_at": reply_at,
                    "extra": {"subreddit": "bicycling"} if source_type == "reddit" else {},
                }
            )
            positive = round(max(c, 0.0) * 0.4 + 0.05, 3)
            negative = round(max(-c, 0.0) * 0.4 + 0.03, 3)
            scores.append(
                {
                    "mention_id": mention_id,
                    "compound": mention_compound,
                    "positive": positive if scored else None,
                    "neutral": round(1 - positive - negative, 3) if scored else None,
                    "negative": negative if scored else None,
                    "label": mention_label,
                    "rating_disagrees": disagrees,
                    "first_impression": not employee and random_() < FIRST_IMPRESSION_SHARE,
                    "scored_at": collected_at,
                }
            )
        return mentions, scores, sentences, assignments

    def source_runs(self) -> list[dict[str, Any]]:
        """One row per crawl and source; the last crawl could not reach ``FAILED_SOURCE``."""
        failed_business, failed_source, reason = FAILED_SOURCE
        b = [name for name, _, _ in BUSINESSES].index(failed_business)
        failed_id = next(s[0] for s in self.sources[b] if s[1] == failed_source)
        rows = []
        last = len(self.run_times)
        for run_id in range(1, last + 1):
            for source_id in [s[0] for srcs in self.sources for s in srcs]:
                new = self.collected[(run_id, source_id)]
                failed = run_id == last and source_id == failed_id
                rows.append(
                    {
                        "run_id": run_id,
                        "source_id": source_id,
                        "status": "failed" if failed else ("ok" if new else "empty"),
                        "new": 0 if failed else new,
                        "duplicates": 0,
                        "dropped": 0,
                        "errors": 1 if failed else 0,
                        "detail": {"reason": reason} if failed else {},
                    }
                )
        return rows


Batch = tuple[
    list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]
]


def pick(r: float, weighted: tuple[tuple[int, float], ...]) -> int:
    for value, share in weighted:
        r -= share
        if r < 0:
            return value
    return weighted[-1][0]


def clip(value: float) -> float:
    return -1.0 if value < -1.0 else 1.0 if value > 1.0 else value


# ---------------------------------------------------------------------------------------------
# Building the store
# ---------------------------------------------------------------------------------------------


def parameters(mentions: int) -> dict[str, Any]:
    """Everything the store's rows depend on; a cached store is reused only when all match."""
    migrations = hashlib.sha256()
    for path in sorted((ROOT / "monitor" / "migrations").rglob("*.py")):
        migrations.update(path.name.encode() + b"\0" + path.read_bytes())
    taxonomy = ROOT / "config" / "touchpoints.yaml"
    return {
        "mentions": mentions,
        "last_day": LAST_DAY.isoformat(),
        "days": DAYS,
        "seed": SEED,
        "businesses": [[name, share, [list(s) for s in srcs]] for name, share, srcs in BUSINESSES],
        "generator": GENERATOR_VERSION,
        "migrations": migrations.hexdigest()[:12],
        "taxonomy": hashlib.sha256(taxonomy.read_bytes()).hexdigest()[:12],
    }


def sidecar(db: Path) -> Path:
    return db.with_name(db.name + ".params.json")


def ensure_store(db: Path | None, mentions: int) -> tuple[Path, float | None]:
    """The bench store's path and its build time (None when a matching one was reused)."""
    wanted = parameters(mentions)
    if db is None:
        fingerprint = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:12]
        db = Path(tempfile.gettempdir()) / f"monitor-bench-digest-{fingerprint}.sqlite"
    params = sidecar(db)
    if db.exists():
        if not params.exists():
            raise SystemExit(
                f"{db} exists and was not built by bench/digest.py (no {params.name}): "
                "refusing to overwrite it; pass another --db"
            )
        if json.loads(params.read_text(encoding="utf-8")) == wanted:
            restore_store(db)
            return db, None
        print(f"{db} was built with other parameters: rebuilding it")
        params.unlink()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    began = time.monotonic()
    building = db.with_name(db.name + ".building")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    # In its own process, so the measuring processes started later by this one do not inherit
    # its high-water RSS (Linux keeps ru_maxrss across fork and exec).
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "build",
            "--db",
            str(building),
            "--mentions",
            str(mentions),
        ],
        check=True,
    )
    building.rename(db)
    # Store.open's migration lock file, named after the path the store was built under.
    Path(f"{building}.migrate.lock").unlink(missing_ok=True)
    params.write_text(json.dumps(wanted, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return db, time.monotonic() - began


def build_store(db: Path, mentions: int) -> None:
    from sqlalchemy import insert

    from monitor.store import (
        Mention,
        MentionScore,
        Run,
        SentenceScore,
        SourceRun,
        Store,
        TouchpointAssignment,
    )

    began = time.monotonic()
    store = Store.open(f"sqlite:///{db}")
    sources: list[list[tuple[int, str, str, float]]] = []
    for name, _, business_sources in BUSINESSES:
        business_id = store.business_id(re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"), name)
        sources.append(
            [
                (store.source_id(business_id, source, type_), source, type_, share)
                for source, type_, share in business_sources
            ]
        )
    # Rows are generated in a second process while this one inserts the previous batch; the
    # cyclic garbage collector is off in both (millions of young dicts, no cycles).
    gc.disable()
    starts = list(range(0, mentions, BATCH_MENTIONS))
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        1, mp_context=context, initializer=_start_generator, initargs=(mentions, sources)
    ) as pool:
        # One worker runs the tasks in order, so the seeded generator's state stays sequential;
        # at most two batches wait, so memory stays bounded.
        pending = deque(
            pool.submit(_generate, first, min(first + BATCH_MENTIONS, mentions))
            for first in starts[:2]
        )
        waiting = inserting = 0.0
        sentences = assignments = 0
        with store.engine.connect() as connection:
            # A bench store can be rebuilt at will: trade durability for build speed, and keep
            # the indexes being filled in memory.
            connection.exec_driver_sql("PRAGMA synchronous=OFF")
            connection.exec_driver_sql("PRAGMA cache_size=-1000000")
            connection.commit()  # SQLAlchemy began a transaction for the pragmas
            with connection.begin():
                connection.execute(insert(Run), _runs())
            for number, first in enumerate(starts):
                started = time.monotonic()
                mention_rows, score_rows, sentence_rows, assignment_rows = (
                    pending.popleft().result()
                )
                if number + 2 < len(starts):
                    following = starts[number + 2]
                    pending.append(
                        pool.submit(_generate, following, min(following + BATCH_MENTIONS, mentions))
                    )
                generated = time.monotonic()
                with connection.begin():
                    connection.execute(insert(Mention), mention_rows)
                    connection.execute(insert(MentionScore), score_rows)
                    connection.execute(insert(SentenceScore), sentence_rows)
                    connection.execute(insert(TouchpointAssignment), assignment_rows)
                waiting += generated - started
                inserting += time.monotonic() - generated
                sentences += len(sentence_rows)
                assignments += len(assignment_rows)
                stop = first + len(mention_rows)
                if stop % 200_000 == 0 or stop == mentions:
                    print(
                        f"  {stop:>9,} mentions, {sentences:,} sentences, {assignments:,} "
                        f"assignments: {time.monotonic() - began:.0f} s (inserting "
                        f"{inserting:.0f} s, waiting for rows {waiting:.0f} s)",
                        flush=True,
                    )
            with connection.begin():
                connection.execute(insert(SourceRun), pool.submit(_source_runs).result())
            analysed = time.monotonic()
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
            print(f"  ANALYZE: {time.monotonic() - analysed:.1f} s", flush=True)
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    gc.enable()
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    print(
        f"  CPU: inserting process {own.ru_utime + own.ru_stime:.0f} s, generating process "
        f"{children.ru_utime + children.ru_stime:.0f} s",
        flush=True,
    )


def restore_store(db: Path) -> None:
    """Undo what an interrupted run may have left: tried indexes, removed statistics."""
    import sqlite3

    connection = sqlite3.connect(db)
    try:
        leftovers = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'bench_try_%'"
            )
        ]
        for name in leftovers:
            connection.execute(f"DROP INDEX {name}")
        if not connection.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0]:
            connection.execute("ANALYZE")
            leftovers.append("statistics (ANALYZE run again)")
        connection.commit()
    finally:
        connection.close()
    if leftovers:
        print(f"restored the bench store after an interrupted run: {', '.join(leftovers)}")


def drop_statistics(db: Path) -> None:
    """Forget ANALYZE's statistics, as in a store ``monitor`` made (it never runs ANALYZE)."""
    import sqlite3

    connection = sqlite3.connect(db)
    try:
        connection.execute("DELETE FROM sqlite_stat1")
        connection.commit()
    finally:
        connection.close()


def analyse(db: Path) -> float:
    import sqlite3

    began = time.monotonic()
    connection = sqlite3.connect(db)
    try:
        connection.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()
    return time.monotonic() - began


_generator: Generator | None = None


def _start_generator(mentions: int, sources: list[list[tuple[int, str, str, float]]]) -> None:
    global _generator
    gc.disable()
    _generator = Generator(mentions, SEED, sources)


def _generate(first: int, stop: int) -> Batch:
    assert _generator is not None
    return _generator.batch(first, stop)


def _source_runs() -> list[dict[str, Any]]:
    assert _generator is not None
    return _generator.source_runs()


def _runs() -> list[dict[str, Any]]:
    """A crawl every morning at 06:00 UTC; the last one (the digest's Monday) partly failed."""
    first = datetime.combine(LAST_DAY, datetime.min.time()) - timedelta(days=DAYS - 1, hours=-6)
    return [
        {
            "id": i + 1,
            "command": "run",
            "started_at": first + timedelta(days=i),
            "finished_at": first + timedelta(days=i, minutes=9),
            "status": "partial" if i == DAYS else "ok",
        }
        for i in range(DAYS + 1)
    ]


# ---------------------------------------------------------------------------------------------
# Measuring (in a fresh subprocess per round)
# ---------------------------------------------------------------------------------------------


def bench_config(db: Path, output_dir: Path) -> Any:
    from monitor.config import parse_config

    raw = {
        "database": f"sqlite:///{db}",
        "output_dir": str(output_dir),
        "businesses": [
            {"name": name, "competitor": i > 0} for i, (name, _, _) in enumerate(BUSINESSES)
        ],
    }
    return parse_config(raw, output_dir / "bench.yaml")


def rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hwm_mb() -> float | None:
    """This process image's own peak RSS (VmHWM, reset by exec, unlike ru_maxrss); Linux only."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_worker(args: argparse.Namespace) -> int:
    """One round: a cold ``write_digest``, then ``build_digest`` and rendering, then baselines."""
    result: dict[str, Any] = {"rss_start_mb": rss_mb()}
    began = time.perf_counter()
    from sqlalchemy import func, select

    from monitor.digest import Period, build_for_config, render_digest, write_digest
    from monitor.store import Business, Mention, Store, TouchpointAssignment
    from monitor.touchpoints import load_taxonomy

    result["imports_s"] = time.perf_counter() - began
    result["rss_imports_mb"] = rss_mb()
    output = Path(args.output)
    began = time.perf_counter()
    config = bench_config(Path(args.db), output)
    store = Store.open(config.database)
    taxonomy = load_taxonomy(config)
    period = Period.parse_week(WEEK)
    result["setup_s"] = time.perf_counter() - began

    began = time.perf_counter()
    path = write_digest(config, store, taxonomy, period)
    result["write_digest_s"] = time.perf_counter() - began
    result["rss_after_write_mb"] = rss_mb()
    result["html_kb"] = path.stat().st_size / 1024

    began = time.perf_counter()
    digest = build_for_config(config, store, taxonomy, period)
    result["build_digest_s"] = time.perf_counter() - began
    began = time.perf_counter()
    render_digest(digest)
    render_digest(digest, "digest.txt.j2")
    result["render_s"] = time.perf_counter() - began
    result["digest"] = {
        "total": digest.total,
        "alerts": [f"{a.label} {a.kind} {a.direction}" for a in digest.alerts],
        "needs_reply_total": digest.needs_reply_total,
        "sources": len(digest.sources),
        "failed_sources": len(digest.failed_sources),
        "competitors": len(digest.competitors),
    }

    with store.engine.connect() as connection:
        business_id = connection.scalar(
            select(Business.id).where(Business.key == config.business.key)
        )
        in_week = (
            Mention.business_id == business_id,
            Mention.occurred_at >= period.start,
            Mention.occurred_at < period.end,
        )
        began = time.perf_counter()
        result["count_rows"] = connection.scalar(select(func.count()).select_from(Mention))
        result["count_s"] = time.perf_counter() - began
        began = time.perf_counter()
        grouped = connection.execute(
            select(
                TouchpointAssignment.touchpoint,
                func.count(),
                func.avg(TouchpointAssignment.compound),
            )
            .join(Mention, Mention.id == TouchpointAssignment.mention_id)
            .where(*in_week)
            .group_by(TouchpointAssignment.touchpoint)
        ).all()
        result["group_by_s"] = time.perf_counter() - began
        result["group_by_rows"] = sum(n for _, n, _ in grouped)
    store.close()
    result["rss_peak_mb"] = rss_mb()
    result["hwm_peak_mb"] = hwm_mb()
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0


def run_profile_worker(args: argparse.Namespace) -> int:
    """Every statement one ``build_digest`` issues, replayed and timed; plans; cProfile."""
    from sqlalchemy import event

    from monitor.digest import Period, build_for_config
    from monitor.store import Store
    from monitor.touchpoints import load_taxonomy

    output = Path(args.output)
    config = bench_config(Path(args.db), output)
    store = Store.open(config.database)
    taxonomy = load_taxonomy(config)
    period = Period.parse_week(WEEK)
    build_for_config(config, store, taxonomy, period)  # warm, like the timed rounds' second call

    statements: list[tuple[str, Any, str]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, _many: Any
    ) -> None:
        caller = "?"
        for frame in reversed(traceback.extract_stack()):
            if frame.filename.endswith(os.path.join("monitor", "digest.py")):
                caller = f"{frame.name}:{frame.lineno}"
                break
        statements.append((statement, params, caller))

    event.listen(store.engine, "before_cursor_execute", capture)
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    build_for_config(config, store, taxonomy, period)
    profiler.disable()
    total = time.perf_counter() - began
    event.remove(store.engine, "before_cursor_execute", capture)

    replayed = []
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, params, caller in statements:
            best = math.inf
            rows = 0
            for _ in range(2):
                started = time.perf_counter()
                rows = len(cursor.execute(statement, params).fetchall())
                best = min(best, time.perf_counter() - started)
            plan = [row[3] for row in cursor.execute("EXPLAIN QUERY PLAN " + statement, params)]
            replayed.append(
                {
                    "caller": caller,
                    "seconds": best,
                    "rows": rows,
                    "sql": statement,
                    "params": [str(p) for p in params],
                    "plan": plan,
                }
            )
    finally:
        raw.close()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(r"monitor/|sqlalchemy/engine/|jinja2", 18)
    Path(args.result).write_text(
        json.dumps(
            {"build_digest_s": total, "statements": replayed, "cprofile": stream.getvalue()}
        ),
        encoding="utf-8",
    )
    store.close()
    return 0


def measure(db: Path, worker: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-digest-") as temp:
        result = Path(temp) / "result.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            worker,
            "--db",
            str(db),
            "--output",
            str(Path(temp) / "digests"),
            "--result",
            str(result),
        ]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if completed.returncode != 0 or not result.exists():
            raise SystemExit(
                f"worker failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}"
            )
        loaded: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
        return loaded


def measure_rounds(db: Path, rounds: int, title: str) -> dict[str, Any]:
    print(f"\n{title}")
    results = []
    for round_number in range(1, rounds + 1):
        r = measure(db, "measure")
        results.append(r)
        print(
            f"  round {round_number}: write_digest {r['write_digest_s']:.3f} s (cold process), "
            f"build_digest {r['build_digest_s']:.3f} s, render {r['render_s']:.3f} s, "
            f"peak RSS {r['rss_peak_mb']:.0f} MB; count(*) {r['count_s'] * 1000:.0f} ms, "
            f"GROUP BY touchpoint {r['group_by_s'] * 1000:.0f} ms",
            flush=True,
        )
    best = {
        key: min(r[key] for r in results)
        for key in (
            "write_digest_s",
            "build_digest_s",
            "render_s",
            "count_s",
            "group_by_s",
            "setup_s",
            "imports_s",
        )
    }
    best["rss_peak_mb"] = max(r["rss_peak_mb"] for r in results)
    best["rss_imports_mb"] = max(r["rss_imports_mb"] for r in results)
    best["rss_after_write_mb"] = max(r["rss_after_write_mb"] for r in results)
    hwm = [r["hwm_peak_mb"] for r in results if r.get("hwm_peak_mb") is not None]
    best["hwm_peak_mb"] = max(hwm) if hwm else None
    best["first"] = results[0]
    print(
        f"  best of {rounds}: write_digest {best['write_digest_s']:.3f} s, build_digest "
        f"{best['build_digest_s']:.3f} s, render (HTML + text) {best['render_s'] * 1000:.0f} ms; "
        f"peak RSS {best['rss_peak_mb']:.0f} MB (after imports {best['rss_imports_mb']:.0f} MB"
        + (f", VmHWM {best['hwm_peak_mb']:.0f} MB)" if best["hwm_peak_mb"] else ")")
    )
    print(
        f"  baseline: SELECT count(*) FROM mentions {best['count_s'] * 1000:.1f} ms "
        f"({results[0]['count_rows']:,} rows); GROUP BY touchpoint over the week "
        f"{best['group_by_s'] * 1000:.1f} ms ({results[0]['group_by_rows']:,} assignments); "
        f"write_digest = {best['write_digest_s'] / best['count_s']:.1f}× count(*), "
        f"{best['write_digest_s'] / best['group_by_s']:.0f}× the GROUP BY"
    )
    print(
        f"  also: imports {best['imports_s']:.2f} s, Store.open + taxonomy + config "
        f"{best['setup_s']:.2f} s (not in write_digest's time); digest HTML "
        f"{results[0]['html_kb']:.0f} KB; content: {json.dumps(results[0]['digest'])}"
    )
    return best


def print_profile(db: Path, top: int = 8) -> list[dict[str, Any]]:
    profile = measure(db, "profile")
    statements = profile["statements"]
    total_sql = sum(s["seconds"] for s in statements)
    print(
        f"\nprofile: build_digest {profile['build_digest_s']:.3f} s under cProfile; "
        f"{len(statements)} SQL statements, replayed one by one: {total_sql:.3f} s in SQLite"
    )
    ranked = sorted(statements, key=lambda s: s["seconds"], reverse=True)
    print(f"{'ms':>8} {'rows':>6}  issued by")
    for s in ranked[:top]:
        print(f"{s['seconds'] * 1000:>8.1f} {s['rows']:>6}  {s['caller']}")
    for s in ranked[:3]:
        print(f"\n--- {s['caller']}: {s['seconds'] * 1000:.1f} ms")
        sql = re.sub(r"\s+", " ", s["sql"])
        print(sql if len(sql) < 700 else f"{sql[:350]} … {sql[-300:]}")
        params = s["params"]
        print(f"params: {params if len(params) < 12 else [*params[:6], '…', *params[-4:]]}")
        print("plan:\n  " + "\n  ".join(s["plan"]))
    print("\ncProfile, cumulative (monitor/, sqlalchemy.engine, jinja2):")
    lines = profile["cprofile"].splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    print("\n".join(lines[start : start + 20]))
    return ranked


INDEX_SPEC = re.compile(r"^\s*(\w+)\s*\(\s*(\w+(?:\s*,\s*\w+)*)\s*\)\s*$")


def try_indexes(db: Path, specs: list[str]) -> list[str]:
    """Create each proposed index (and its statistics) on the bench store; returns their names."""
    import sqlite3

    names = []
    connection = sqlite3.connect(db)
    try:
        for number, spec in enumerate(specs, start=1):
            match = INDEX_SPEC.match(spec)
            if not match:
                raise SystemExit(f"--try-index {spec!r}: expected TABLE(COLUMN, ...)")
            table, columns = match.group(1), match.group(2)
            name = f"bench_try_{number}_{table}"
            began = time.monotonic()
            connection.execute(f"CREATE INDEX {name} ON {table} ({columns})")
            connection.execute(f"ANALYZE {name}")
            connection.commit()
            print(
                f"created {name} ON {table}({columns}) and analysed it: {time.monotonic() - began:.1f} s"
            )
            names.append(name)
    finally:
        connection.close()
    return names


def drop_indexes(db: Path, names: list[str]) -> None:
    import sqlite3

    connection = sqlite3.connect(db)
    try:
        for name in names:
            connection.execute(f"DROP INDEX IF EXISTS {name}")
        connection.commit()
    finally:
        connection.close()
    print(f"dropped {', '.join(names)}: the bench store is as built again")


def run_benchmark(args: argparse.Namespace) -> int:
    import sqlite3

    print("Digest benchmark (bench/digest.py): one weekly digest over a large store")
    print(f"command: {shlex.join([shown_path(sys.executable), *sys.argv])}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {package_version('sqlalchemy')}, alembic {package_version('alembic')}, "
        f"Jinja2 {package_version('jinja2')}, CPUs {os.cpu_count()}, {platform.platform()}"
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    db, built = ensure_store(Path(args.db) if args.db else None, args.mentions)
    size = sum(Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").exists())
    if built is None:
        print(f"store: {db} reused (same parameters), {size / 2**20:,.0f} MB")
    else:
        print(f"store: {db} built in {built:.0f} s, {size / 2**20:,.0f} MB")
    with sqlite3.connect(db) as connection:
        counts = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in (
                "mentions",
                "mention_scores",
                "sentence_scores",
                "touchpoint_assignments",
                "sources",
            )
        }
        per_business = connection.execute(
            "SELECT business_id, count(*) FROM mentions GROUP BY business_id"
        ).fetchall()
    print(
        "rows: "
        + ", ".join(f"{table} {n:,}" for table, n in counts.items())
        + "; mentions per business: "
        + ", ".join(f"{b}: {n:,}" for b, n in per_business)
    )
    print(
        f"measured: `monitor digest --week {WEEK}` for {BUSINESSES[0][0]} (competitors "
        f"{', '.join(b[0] for b in BUSINESSES[1:])}), each round a fresh process; "
        f"targets < {TARGET_SECONDS:g} s and < {TARGET_MB:g} MB"
    )
    figures: list[tuple[str, dict[str, Any]]] = []

    def run(title: str) -> dict[str, Any]:
        best = measure_rounds(db, args.rounds, title)
        figures.append((title, best))
        missed = best["write_digest_s"] >= TARGET_SECONDS or best["rss_peak_mb"] >= TARGET_MB
        print(
            f"  target: write_digest {best['write_digest_s']:.2f} s vs {TARGET_SECONDS:g} s, "
            f"peak RSS {best['rss_peak_mb']:.0f} MB vs {TARGET_MB:g} MB: "
            + ("MISSED" if missed else "met")
        )
        if missed or args.profile:
            print_profile(db)
        return best

    def without_statistics(title: str) -> None:
        drop_statistics(db)
        try:
            run(title)
        finally:
            print(f"statistics restored: ANALYZE took {analyse(db):.1f} s")

    as_built = run("as built: the migrations' indexes, ANALYZE run")
    if args.without_stats:
        without_statistics("as built, without statistics (a store monitor made: no ANALYZE)")
    if args.try_index:
        tried = ", ".join(args.try_index)
        names = try_indexes(db, args.try_index)
        try:
            run(f"with {tried}, ANALYZE run")
            if args.without_stats:
                without_statistics(f"with {tried}, without statistics")
        finally:
            drop_indexes(db, names)
    if len(figures) > 1:
        print(f"\nsummary (best of {args.rounds} fresh processes each; peak RSS the largest):")
        print(f"{'write_digest':>13} {'build':>8} {'render':>8} {'RSS':>7} {'GROUP BY':>9}  store")
        for title, best in figures:
            print(
                f"{best['write_digest_s']:>11.3f} s {best['build_digest_s']:>6.3f} s "
                f"{best['render_s'] * 1000:>5.0f} ms {best['rss_peak_mb']:>4.0f} MB "
                f"{best['group_by_s'] * 1000:>6.1f} ms  {title}"
            )
    missed = as_built["write_digest_s"] >= TARGET_SECONDS or as_built["rss_peak_mb"] >= TARGET_MB
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if missed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", help="the bench store's path (default: cached under the temp dir)")
    parser.add_argument("--mentions", type=int, default=DEFAULT_MENTIONS, help="mentions to store")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes measured")
    parser.add_argument("--profile", action="store_true", help="per-query times, plans, cProfile")
    parser.add_argument(
        "--try-index",
        action="append",
        metavar="TABLE(COLUMNS)",
        help="measure again with this index added (repeatable); it is dropped afterwards",
    )
    parser.add_argument(
        "--without-stats",
        action="store_true",
        help="also measure with ANALYZE's statistics removed (they are restored afterwards)",
    )
    parser.add_argument("--worker", choices=("build", "measure", "profile"), help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mentions < BATCH_MENTIONS or args.rounds < 1:
        parser.error(f"--mentions must be at least {BATCH_MENTIONS} and --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker == "build":
        build_store(Path(args.db), args.mentions)
        return 0
    if args.worker == "measure":
        return run_worker(args)
    if args.worker == "profile":
        return run_profile_worker(args)
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
