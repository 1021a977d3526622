"""Distributed crawl throughput: 1, 2 and 4 `monitor worker`s against one `monitor crawl`.

The same generated review site as ``bench/crawl.py`` (N pages of 5 JSON-LD reviews, every page
a start URL), served on 127.0.0.1, stored into a fresh schema of one PostgreSQL database for
each measurement. Time runs from starting the processes until the store holds every mention
("stored"), and until every mention is also scored ("scored": the whole job, since
collecting and scoring are separate passes), polled as ``poll_wait`` says; start-up is included. Each
process scores with one process (``scoring_processes: 1``), so N workers use N processes.
A worker scores whenever its queue is empty, so the ``--idle`` seconds (1 here) it waits
before exiting come after the last mention is scored, outside the measurement.

    .venv/bin/python bench/distributed.py [--pages 2000] [--workers 1 2 4]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
import yaml
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crawl import REVIEWS_PER_PAGE, generate_site  # noqa: E402
from bench.machine import busy_cpu_seconds, server_cpu_seconds  # noqa: E402
from bench.static_server import serve_in_process  # noqa: E402
from monitor.demo import serve_directory  # noqa: E402

REDIS_URL = os.environ.get("MONITOR_REDIS_URL", "redis://127.0.0.1:6379/0")


def write_config(folder: Path, urls: list[str], database: str) -> Path:
    config = {
        "database": database,
        "user_agent": "monitor/0.1 (distributed benchmark; 127.0.0.1 only)",
        "crawl": {
            "obey_robots": False,
            "autothrottle": False,
            "download_delay": 0,
            "concurrent_requests": 16,
            "concurrent_per_domain": 16,
            "stop_at_known": False,
            "scoring_processes": 1,
        },
        "businesses": [
            {
                "name": "Harbour Lane Cycles",
                "sources": [
                    {
                        "name": "bench-reviews",
                        "type": "structured_data",
                        "start_urls": urls,
                        "max_pages": 1,
                    }
                ],
            }
        ],
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def reset_schema(database: str) -> None:
    engine = create_engine(database)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def counts(connection: psycopg.Connection) -> tuple[int, int]:
    """Mentions stored, and scored."""
    try:
        row = connection.execute(
            "SELECT (SELECT count(*) FROM mentions), (SELECT count(*) FROM mention_scores)"
        ).fetchone()
    except psycopg.errors.UndefinedTable:  # until the first process has migrated the schema
        return 0, 0
    assert row is not None
    return int(row[0]), int(row[1])


@dataclass
class Measurement:
    stored: float  # seconds until every mention is stored
    scored: float  # ... and until every one is scored
    cpu_ours: float  # CPU seconds of the crawling processes (and any they started)
    cpu_site: float  # of the web server, when it runs in a process of its own
    cpu_postgres: float  # of PostgreSQL (every backend, ended ones too)
    cpu_redis: float  # of Redis
    cpu_machine: float  # of the whole machine: the rest is this script and everything else


# A fixed amount of pure-Python work (about 2 s on this machine), run alone and then twice at
# once: how much faster two processes get through twice the work is the most any two workers
# can gain on this machine at that moment, whatever they do (a virtual machine's two CPUs can
# slow each other down).
_CEILING_WORK = "sum(i * i % 7 for i in range(12_000_000))"


def machine_ceiling() -> float:
    """Two processes' throughput over one's, on the same CPU-bound work, measured now."""

    def run(copies: int) -> float:
        started = time.monotonic()
        processes = [subprocess.Popen([sys.executable, "-c", _CEILING_WORK]) for _ in range(copies)]
        for process in processes:
            process.wait()
        return time.monotonic() - started

    return 2 * run(1) / run(2)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    command: list[list[str]],
    env: dict[str, str],
    database: str,
    expected: int,
    site_cpu: Callable[[], float],
    logs: Path | None = None,
) -> Measurement:
    """Run ``command``s side by side until every mention is stored and scored."""
    # One connection, kept open: a new one every poll would cost PostgreSQL a process each time.
    poller = psycopg.connect(database.replace("+psycopg", ""), autocommit=True)

    def cpu() -> tuple[float, ...]:
        return (
            children_cpu(),
            site_cpu(),
            server_cpu_seconds("postgres"),
            server_cpu_seconds("redis-server"),
            busy_cpu_seconds(),
        )

    cpu_before = cpu()
    started = time.monotonic()
    with contextlib.ExitStack() as files:
        processes = [
            subprocess.Popen(
                c,
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=(
                    files.enter_context((logs / f"{n}.log").open("w"))
                    if logs is not None
                    else subprocess.DEVNULL
                ),
            )
            for n, c in enumerate(command, 1)
        ]
    all_stored = None
    last = (started, 0, 0)
    try:
        while True:
            stored, scored = counts(poller)
            now = time.monotonic()
            if all_stored is None and stored >= expected:
                all_stored = time.monotonic() - started
            if scored >= expected:
                break
            if all(p.poll() is not None for p in processes):
                raise RuntimeError(f"processes exited with {stored}/{scored}/{expected}")
            # The next line to cross: every mention stored, then every one scored.
            count, before = (stored, last[1]) if stored < expected else (scored, last[2])
            time.sleep(poll_wait(expected - count, (count - before) / (now - last[0])))
            last = (now, stored, scored)
        all_scored = time.monotonic() - started
        for process in processes:
            process.wait(timeout=120)
    finally:
        poller.close()
    used = (after - before for after, before in zip(cpu(), cpu_before, strict=True))
    return Measurement(all_stored or all_scored, all_scored, *used)


def poll_wait(remaining: int, rate: float) -> float:
    """Seconds until the next count: a quarter of the time the rest should take at the current
    rate, between 0.05 and 1 s. Each count scans both tables, and PostgreSQL does it on the CPUs
    being measured: polling every 0.1 s cost it 5 CPU seconds of a 100-second run, polled so it
    costs a tenth of that, and the end is still seen within 0.05 s or a quarter of the last
    stretch."""
    if rate <= 0:
        return 0.5
    return min(1.0, max(0.05, remaining / rate / 4))


@contextlib.contextmanager
def site_server(root: Path, kind: str) -> Iterator[tuple[str, Callable[[], float]]]:
    """The base URL of the served site, and a function giving the server's CPU seconds so far."""
    if kind == "lean":
        with serve_in_process(root) as server:
            yield server.url, server.cpu_seconds
    else:  # http.server in this process: its CPU is counted with the rest
        with serve_directory(root) as url:
            yield url, lambda: 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the workers this many times, alternating (the median is reported too)",
    )
    parser.add_argument(
        "--site-server",
        choices=["lean", "http.server"],
        default="lean",
        help="lean: bench/static_server.py in its own process (default); "
        "http.server: monitor.demo.serve_directory inside this script",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        help="keep each process's errors (stderr) in this folder, one subfolder a measurement",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "MONITOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    name = f"monitor_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(args.postgres, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    database = (
        args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        + f"/{name}"
    )
    prefix = f"monitor-bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    expected = args.pages * REVIEWS_PER_PAGE
    results: list[tuple[str, Measurement]] = []
    ceilings = [machine_ceiling()]
    try:
        with tempfile.TemporaryDirectory() as folder:
            site = generate_site(Path(folder) / "site", args.pages)
            with site_server(site.root, args.site_server) as (base_url, site_cpu):
                config = write_config(
                    Path(folder), [f"{base_url}/{p}" for p in site.paths], database
                )
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
                    "MONITOR_REDIS_URL": REDIS_URL,
                    "MONITOR_REDIS_PREFIX": prefix,
                }
                monitor = [sys.executable, "-m", "monitor"]

                def logs(name: str) -> Path | None:
                    if args.logs is None:
                        return None
                    folder = args.logs / name
                    folder.mkdir(parents=True, exist_ok=True)
                    return folder

                reset_schema(database)
                crawl = [*monitor, "crawl", "--config", str(config), "-q"]
                results.append(
                    (
                        "`monitor crawl` (one process)",
                        measure([crawl], env, database, expected, site_cpu, logs("crawl")),
                    )
                )
                for round_number, workers in (
                    (r, w) for r in range(1, args.rounds + 1) for w in args.workers
                ):
                    reset_schema(database)
                    subprocess.run(
                        [*monitor, "enqueue", "--config", str(config), "--fresh", "-q"],
                        env=env,
                        cwd=ROOT,
                        check=True,
                        stdout=subprocess.DEVNULL,
                    )
                    worker = [*monitor, "worker", "--config", str(config), "--idle", "1", "-q"]
                    label = f"{workers} × `monitor worker`"
                    if args.rounds > 1:
                        label += f" (round {round_number})"
                    results.append(
                        (
                            label,
                            measure(
                                [worker] * workers,
                                env,
                                database,
                                expected,
                                site_cpu,
                                logs(f"workers-{workers}-round-{round_number}"),
                            ),
                        )
                    )
        ceilings.append(machine_ceiling())
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
    print(
        f"{args.pages} pages, {expected} mentions, PostgreSQL, {os.cpu_count()} CPUs, "
        f"site served by {args.site_server}"
    )
    print(
        "machine ceiling (2 processes of pure-Python work vs 1, before and after): "
        + ", ".join(f"{c:.2f}×" for c in ceilings)
    )
    print(
        "| processes | all stored, s | stored/s | all scored, s | scored/s "
        "| × one worker (scored) | × `monitor crawl` (scored) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    single = results[0][1].scored
    for label, m in results:
        # Against the one-worker measurement of the same round (the machine drifts); the
        # single crawl against the first round's.
        same_round = label[label.index(" (round ") :] if " (round " in label else ""
        one_worker = next(
            (
                o.scored
                for other, o in results
                if other.startswith("1 ×") and other.endswith(same_round)
            ),
            None,
        )
        versus_one = f"{one_worker / m.scored:.2f}×" if one_worker else "—"
        print(
            f"| {label} | {m.stored:.1f} | {expected / m.stored:.0f} | {m.scored:.1f} "
            f"| {expected / m.scored:.0f} | {versus_one} | {single / m.scored:.2f}× |"
        )
    if args.rounds > 1:
        print()
        for workers in args.workers:
            ratios = []
            for round_number in range(1, args.rounds + 1):
                times = dict(results)
                one = times[f"1 × `monitor worker` (round {round_number})"].scored
                this = times[f"{workers} × `monitor worker` (round {round_number})"].scored
                ratios.append(one / this)
            print(
                f"{workers} × `monitor worker`, × one worker of the same round (scored): "
                f"median {statistics.median(ratios):.2f}× "
                f"(rounds: {', '.join(f'{r:.2f}×' for r in ratios)})"
            )
    print()
    print(
        "Where the CPU went: CPU seconds over each measurement (the machine has "
        f"{os.cpu_count()} CPU seconds a second); server side = web server + PostgreSQL + Redis"
    )
    print(
        "| processes | ours | web server | PostgreSQL | Redis | rest (this script, system) "
        "| CPUs busy on average | server side / ours |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, m in results:
        server_side = m.cpu_site + m.cpu_postgres + m.cpu_redis
        rest = max(m.cpu_machine - m.cpu_ours - server_side, 0.0)
        print(
            f"| {label} | {m.cpu_ours:.1f} | {m.cpu_site:.1f} | {m.cpu_postgres:.1f} "
            f"| {m.cpu_redis:.1f} | {rest:.1f} | {m.cpu_machine / m.scored:.2f} "
            f"| {server_side / m.cpu_ours:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
