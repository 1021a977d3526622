"""Storage: the database schema and the only code that writes mentions.

SQLite by default, PostgreSQL by URL. The schema comes from Alembic migrations (run on open);
mentions are written with ``INSERT … ON CONFLICT DO NOTHING`` on their de-duplication key, so a
rerun, a resumed crawl or two overlapping runs can never store a mention twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    exists,
    false,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from monitor.lock import file_lock, sqlite_path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# SQLite waits this long for another writer (a second cron run, a digest) before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


class Base(DeclarativeBase):
    pass


class Business(Base):
    __tablename__ = "businesses"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(400))


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("business_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(50))
    cursor: Mapped[str | None] = mapped_column(Text)
    """Where the source's last successful run stopped (a since-id, a date …)."""


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    command: Mapped[str] = mapped_column(String(50))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20), default="running")
    """running, ok, partial (some sources failed), failed."""


class SourceRun(Base):
    __tablename__ = "source_runs"
    __table_args__ = (UniqueConstraint("run_id", "source_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    status: Mapped[str] = mapped_column(String(20))
    """ok, empty (reached but nothing found), failed."""
    new: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Mention(Base):
    __tablename__ = "mentions"
    __table_args__ = (
        Index("ix_mentions_business_occurred", "business_id", "occurred_at"),
        Index("ix_mentions_content_hash", "content_hash"),
        # The digest's per-source counts for a period (bench/digest.py: 2.9 s → 1.0 s at 1M rows).
        Index("ix_mentions_source_occurred", "source_id", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id"))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    kind: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str | None] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(400))
    rating: Mapped[float | None] = mapped_column(Float)
    """Normalised to 0 (worst) … 1 (best)."""
    rating_raw: Mapped[str | None] = mapped_column(String(100))
    published_at: Mapped[datetime | None] = mapped_column(DateTime)
    """UTC; the offset the source gave is kept in ``published_offset_minutes``."""
    published_offset_minutes: Mapped[int | None] = mapped_column(Integer)
    collected_at: Mapped[datetime] = mapped_column(DateTime)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    """When it happened as far as we know: published, else collected. Periods filter on it."""
    language: Mapped[str] = mapped_column(String(20))
    owner_reply: Mapped[str | None] = mapped_column(Text)
    owner_reply_at: Mapped[datetime | None] = mapped_column(DateTime)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MentionScore(Base):
    __tablename__ = "mention_scores"
    mention_id: Mapped[int] = mapped_column(ForeignKey("mentions.id"), primary_key=True)
    compound: Mapped[float | None] = mapped_column(Float)
    positive: Mapped[float | None] = mapped_column(Float)
    neutral: Mapped[float | None] = mapped_column(Float)
    negative: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(30))
    rating_disagrees: Mapped[bool] = mapped_column(Boolean, default=False)
    first_impression: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The mention describes a first contact (first visit, first call, new customer …)."""
    scored_at: Mapped[datetime] = mapped_column(DateTime)


class SentenceScore(Base):
    __tablename__ = "sentence_scores"
    __table_args__ = (UniqueConstraint("mention_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mention_id: Mapped[int] = mapped_column(ForeignKey("mentions.id"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    compound: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(30))


class TouchpointAssignment(Base):
    __tablename__ = "touchpoint_assignments"
    __table_args__ = (
        UniqueConstraint("mention_id", "touchpoint"),
        Index("ix_assignments_touchpoint_rank", "touchpoint", "rank"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    mention_id: Mapped[int] = mapped_column(ForeignKey("mentions.id"))
    touchpoint: Mapped[str] = mapped_column(String(80))
    rank: Mapped[int] = mapped_column(Integer)
    """0 for the primary touchpoint."""
    confidence: Mapped[float] = mapped_column(Float)
    compound: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(30))
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


@dataclass
class PreparedMention:
    """A mention ready to store: cleaned, keyed, scored and mapped by the pipeline."""

    row: dict[str, Any]
    """Column values for ``mentions`` (without ids)."""
    score: dict[str, Any]
    sentences: list[dict[str, Any]]
    assignments: list[dict[str, Any]]


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the digest read while a crawl writes; the busy timeout makes a second writer wait
    # instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


# A fixed key for PostgreSQL's advisory lock around migrations (another than the run lock's).
_MIGRATION_LOCK_KEY = 0x6D6F6E69746F72  # "monitor"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already).

    Two processes starting at once must not both migrate: the second waits for the first (a file
    lock for SQLite, a transaction-scoped advisory lock for PostgreSQL) and then finds nothing
    left to do.
    """
    settings = AlembicConfig()
    settings.set_main_option("script_location", str(MIGRATIONS))
    path = sqlite_path(engine)
    guard = file_lock(path, ".migrate.lock", timeout=120) if path else contextlib.nullcontext()
    with guard, engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        settings.attributes["connection"] = connection
        command.upgrade(settings, "head")


def insert_ignoring_conflicts(
    connection: Connection,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    unique: Sequence[str],
    returning: str | None = None,
) -> Any:
    """``INSERT … ON CONFLICT (*unique) DO NOTHING`` for many rows, as fast as the driver allows.

    Returns how many rows were inserted, or with ``returning`` the inserted rows' values of that
    column. On PostgreSQL the rows go through psycopg's pipelined ``executemany`` (SQLAlchemy's
    multi-row VALUES reports no row count and is 3× slower with RETURNING: bench/ingest.py).
    """
    table = cast(Table, model.__table__)
    if connection.dialect.name != "postgresql":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(unique))
        if returning is None:
            return connection.execute(stmt, rows).rowcount
        return list(connection.scalars(stmt.returning(table.c[returning]), rows))
    columns, params = _psycopg_rows(table, rows)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('%s' for _ in columns)}) "
        f"ON CONFLICT ({', '.join(unique)}) DO NOTHING"
    ) + (f" RETURNING {returning}" if returning else "")
    cursor = _psycopg_cursor(connection)
    try:
        cursor.executemany(sql, params, returning=returning is not None)
        if returning is None:
            return cursor.rowcount
        values: list[Any] = []
        while True:
            values.extend(value for (value,) in cursor.fetchall())
            if not cursor.nextset():
                return values
    finally:
        cursor.close()


def insert_new_rows(
    connection: Connection, model: type[Base], rows: Sequence[dict[str, Any]]
) -> None:
    """Insert rows that cannot conflict with stored ones, as fast as the driver allows.

    On PostgreSQL that is ``COPY … FROM STDIN``: the ~10 sentence and touchpoint rows of each
    mention a scoring pass stores then take about half the time of a pipelined ``executemany``
    (profiled: 1.4 s against 3.1 s for the rows of 6,000 mentions).
    """
    table = cast(Table, model.__table__)
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    columns, params = _psycopg_rows(table, rows)
    cursor = _psycopg_cursor(connection)
    try:
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for values in params:
                copy.write_row(values)
    finally:
        cursor.close()


def _psycopg_rows(table: Table, rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[Any]]:
    """The rows' columns, and their values as psycopg takes them (JSON columns sent as JSON)."""
    from psycopg.types.json import Json

    columns = list(rows[0])
    json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
    return columns, [
        tuple(Json(row[c]) if c in json_columns else row[c] for c in columns) for row in rows
    ]


def _psycopg_cursor(connection: Connection) -> Any:
    """A cursor of the psycopg connection under SQLAlchemy's, in its transaction."""
    return connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def not_scored() -> ColumnElement[bool]:
    """The condition of a mention with no judgement yet (stored, not scored)."""
    return ~exists().where(MentionScore.mention_id == Mention.id)


def save_scores(connection: Connection, batch: Sequence[tuple[int, PreparedMention]]) -> int:
    """The judgement of stored mentions, within the caller's transaction.

    A mention that got its score meanwhile (another scorer) keeps the first one: only the
    mentions whose score row this call inserted get sentences and touchpoints.
    """
    if not batch:
        return 0
    scores = [{**p.score, "mention_id": i} for i, p in batch]
    stored = set(
        insert_ignoring_conflicts(
            connection, MentionScore, scores, ["mention_id"], returning="mention_id"
        )
    )
    sentences = [{**s, "mention_id": i} for i, p in batch if i in stored for s in p.sentences]
    if sentences:
        insert_new_rows(connection, SentenceScore, sentences)
    assignments = [{**a, "mention_id": i} for i, p in batch if i in stored for a in p.assignments]
    if assignments:
        insert_new_rows(connection, TouchpointAssignment, assignments)
    return len(stored)


class Store:
    """The database a run writes mentions to and a digest reads from."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        engine = create_db_engine(url)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def url(self) -> str:
        """The database URL, password included, for another process to open."""
        return self.engine.url.render_as_string(hide_password=False)

    def unscored(self) -> int:
        """How many stored mentions wait for the scoring pass."""
        with self.engine.connect() as connection:
            return int(
                connection.scalar(select(func.count()).select_from(Mention).where(not_scored()))
                or 0
            )

    @property
    def _dialect(self) -> Any:
        """The dialect module whose ``insert`` has ``on_conflict_do_nothing``."""
        return postgresql if self.engine.dialect.name == "postgresql" else sqlite

    def business_id(self, key: str, name: str) -> int:
        with self.engine.begin() as connection:
            stmt = self._dialect.insert(Business).values(key=key, name=name)
            connection.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
            connection.execute(update(Business).where(Business.key == key).values(name=name))
            return int(
                connection.execute(select(Business.id).where(Business.key == key)).scalar_one()
            )

    def source_id(self, business_id: int, name: str, type_: str) -> int:
        with self.engine.begin() as connection:
            stmt = self._dialect.insert(Source).values(
                business_id=business_id, name=name, type=type_
            )
            connection.execute(stmt.on_conflict_do_nothing(index_elements=["business_id", "name"]))
            return int(
                connection.execute(
                    select(Source.id).where(Source.business_id == business_id, Source.name == name)
                ).scalar_one()
            )

    def cursor(self, source_id: int) -> str | None:
        """Where the last complete collection of a source stopped."""
        with self.engine.connect() as connection:
            return connection.scalar(select(Source.cursor).where(Source.id == source_id))

    def set_cursor(self, source_id: int, value: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(Source).where(Source.id == source_id).values(cursor=value))

    def known_keys(self, keys: Iterable[str]) -> set[str]:
        wanted = list(set(keys))
        found: set[str] = set()
        with self.engine.connect() as connection:
            # Chunked to stay under SQLite's bound-parameter limit.
            for start in range(0, len(wanted), 900):
                chunk = wanted[start : start + 900]
                found.update(
                    connection.scalars(
                        select(Mention.dedup_key).where(Mention.dedup_key.in_(chunk))
                    )
                )
        return found

    def save_mentions(self, rows: Sequence[dict[str, Any]]) -> int:
        """Store a batch of mention rows in one transaction; returns how many were new.

        Rows whose key is stored already (a rerun, an overlapping run, another worker) are left
        alone. Scores come later, from the scoring pass (``monitor.scoring``).
        """
        if not rows:
            return 0
        with self.engine.begin() as connection:
            return insert_ignoring_conflicts(connection, Mention, rows, ["dedup_key"])

    def save(self, batch: Sequence[PreparedMention]) -> int:
        """Store mentions judged already, with their judgements, in one transaction; returns how
        many were new (others were known)."""
        if not batch:
            return 0
        by_key = {m.row["dedup_key"]: m for m in batch}
        with self.engine.begin() as connection:
            stmt = (
                self._dialect.insert(Mention)
                .on_conflict_do_nothing(index_elements=["dedup_key"])
                .returning(Mention.id, Mention.dedup_key)
            )
            inserted = connection.execute(stmt, [m.row for m in by_key.values()]).all()
            return save_scores(
                connection, [(mention_id, by_key[key]) for mention_id, key in inserted]
            )

    def start_run(self, command_name: str) -> int:
        """Record a new run. Call it holding the run lock: any run still marked running then
        died without finishing (killed, machine down) and is marked interrupted."""
        with self.engine.begin() as connection:
            connection.execute(
                update(Run).where(Run.status == "running").values(status="interrupted")
            )
            return int(
                connection.execute(
                    insert(Run)
                    .values(command=command_name, started_at=utc_now(), status="running")
                    .returning(Run.id)
                ).scalar_one()
            )

    def finish_run(self, run_id: int, status: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(Run).where(Run.id == run_id).values(finished_at=utc_now(), status=status)
            )

    def replace_scores(self, batch: Sequence[tuple[int, PreparedMention]]) -> None:
        """New scores, sentences and touchpoints for stored mentions, in one transaction."""
        if not batch:
            return
        ids = [mention_id for mention_id, _ in batch]
        with self.engine.begin() as connection:
            for table in (TouchpointAssignment, SentenceScore, MentionScore):
                connection.execute(delete(table).where(table.mention_id.in_(ids)))
            save_scores(connection, batch)

    def delete_older_than(self, cutoff: datetime) -> int:
        """Retention: remove mentions (and their scores) that happened before ``cutoff``."""
        old = select(Mention.id).where(Mention.occurred_at < cutoff).scalar_subquery()
        with self.engine.begin() as connection:
            for table in (TouchpointAssignment, SentenceScore, MentionScore):
                connection.execute(delete(table).where(table.mention_id.in_(old)))
            result = connection.execute(delete(Mention).where(Mention.occurred_at < cutoff))
        return int(result.rowcount or 0)

    def record_source_run(self, run_id: int, source_id: int, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(SourceRun).values(run_id=run_id, source_id=source_id, **values)
            )
