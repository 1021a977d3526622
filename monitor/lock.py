"""One run at a time per database: the lock a cron job takes before it collects.

SQLite: an OS file lock beside the database file (released by the OS if the process dies, even
by SIGKILL). PostgreSQL: a session advisory lock on a dedicated connection (released by the
server when that connection ends). Either way a second run finds it taken at once and stops.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy import text
from sqlalchemy.engine import Engine

# A fixed 63-bit key, the same in every process, for PostgreSQL's advisory locks.
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"monitor run").digest()[:8], "big") >> 1


class RunInProgress(Exception):
    """Another run holds the lock on this database."""


def sqlite_path(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).resolve()


@contextlib.contextmanager
def file_lock(path: Path, suffix: str, timeout: float = 0) -> Iterator[None]:
    lock = FileLock(str(path) + suffix)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise RunInProgress(f"another run is using {path} (lock file {lock.lock_file})") from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def run_lock(engine: Engine) -> Iterator[None]:
    """Hold the run lock for the duration of the block, or raise RunInProgress at once."""
    path = sqlite_path(engine)
    if path is not None:
        with file_lock(path, ".run.lock"):
            yield
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            taken = connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": _ADVISORY_KEY}
            )
            connection.commit()
            if not taken:
                raise RunInProgress(
                    f"another run is using the database at {engine.url.render_as_string(hide_password=True)}"
                )
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_KEY})
                connection.commit()
        return
    yield  # other databases: no lock support; de-duplication still keeps the store right
