"""A second run over the same pages stores nothing new and loses nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import run_monitor


def _counts(db: Path) -> tuple[int, int, int, int]:
    with sqlite3.connect(db) as connection:
        return tuple(  # type: ignore[return-value]
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("mentions", "mention_scores", "sentence_scores", "touchpoint_assignments")
        )


def test_second_demo_run_adds_nothing(tmp_path: Path) -> None:
    first = run_monitor("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = _counts(tmp_path / "var" / "monitor.db")
    second = run_monitor("demo", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert _counts(tmp_path / "var" / "monitor.db") == before
    with sqlite3.connect(tmp_path / "var" / "monitor.db") as connection:
        runs = connection.execute(
            "SELECT r.id, sum(s.new), sum(s.duplicates) FROM runs r "
            "JOIN source_runs s ON s.run_id = r.id GROUP BY r.id ORDER BY r.id"
        ).fetchall()
    assert len(runs) == 2
    assert runs[0][1] == before[0]
    assert runs[1][1] == 0
    assert first.stdout == second.stdout  # the same digest path
