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


def _idle_and_total_ticks() -> tuple[int, int]:
    first_line = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0]
    ticks = [int(v) for v in first_line.split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, everything


def busy_cpu_seconds() -> float:
    """CPU seconds all CPUs of the machine have spent busy since boot (Linux ``/proc/stat``)."""
    idle, total = _idle_and_total_ticks()
    return (total - idle) / os.sysconf("SC_CLK_TCK")


def cpu_busy_share(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy during a short sample (Linux ``/proc/stat``); None elsewhere."""
    try:
        idle_before, total_before = _idle_and_total_ticks()
        time.sleep(seconds)
        idle_after, total_after = _idle_and_total_ticks()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total_after - total_before
    return 1 - (idle_after - idle_before) / elapsed if elapsed > 0 else None


def process_cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """User + system CPU seconds of one process (from ``/proc/PID/stat``), and optionally of its
    children that have ended and been waited for; 0 once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(name: str) -> float:
    """CPU seconds used so far by every process called ``name`` (``postgres``, ``redis-server``)
    that is still running, plus its ended children: a forking server (PostgreSQL starts a
    process per connection) counts the connections that have closed too."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == name:
            total += process_cpu_seconds(int(stat.parent.name), reaped_children=True)
    return total


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
