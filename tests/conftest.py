"""Shared fixtures: run the real CLI in a subprocess, serve fixture sites on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.demo import serve_directory

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


@pytest.fixture
def site() -> Iterator[str]:
    """The fixture sites under tests/fixtures/sites, served on 127.0.0.1."""
    with serve_directory(FIXTURES / "sites") as base_url:
        yield base_url
