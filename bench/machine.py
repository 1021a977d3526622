"""What a benchmark prints about the run it measured: the code, the machine and its load.

Shared by the benchmarks so that their figures carry the same context, measured the same way.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def code_fingerprint(paths: Sequence[Path] | None = None) -> str:
    """A short hash of the project's Python sources (or of ``paths``), tying figures to code."""
    if paths is None:
        paths = [*ROOT.glob("monitor/**/*.py"), *ROOT.glob("spiders/*.py")]
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def cpu_busy_share(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy during a short sample (Linux ``/proc/stat``); None elsewhere."""

    def idle_and_total() -> tuple[int, int]:
        first_line = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0]
        ticks = [int(v) for v in first_line.split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, everything

    try:
        idle_before, total_before = idle_and_total()
        time.sleep(seconds)
        idle_after, total_after = idle_and_total()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total_after - total_before
    return 1 - (idle_after - idle_before) / elapsed if elapsed > 0 else None


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg()) + " (1, 5, 15 min)"


def package_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def shown_path(path: str) -> str:
    """A path as typed from the current directory when it lies below it (``.venv/bin/python``)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
