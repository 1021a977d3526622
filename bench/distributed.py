"""Distributed crawl throughput: 1, 2 and 4 `monitor worker`s against one `monitor crawl`.

The same generated review site as ``bench/crawl.py`` (N pages of 5 JSON-LD reviews, every page
a start URL), served on 127.0.0.1, stored into a fresh schema of one PostgreSQL database for
each measurement. Time runs from starting the processes until the store holds every mention
("stored"), and until every mention is also scored ("scored": the whole job, since
collecting and scoring are separate passes), polled every 0.1 s; start-up is included. Each
process scores with one process (``scoring_processes: 1``), so N workers use N processes.
A worker scores once its queue has been idle ``--idle`` seconds (1 here), so that wait is
in the "scored" time of the workers and not of ``monitor crawl``.

    .venv/bin/python bench/distributed.py [--pages 2000] [--workers 1 2 4]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import redis
import yaml
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crawl import REVIEWS_PER_PAGE, generate_site  # noqa: E402
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


def counts(engine: Engine) -> tuple[int, int]:
    """Mentions stored, and scored."""
    try:
        with engine.connect() as connection:
            return (
                int(connection.scalar(text("SELECT count(*) FROM mentions")) or 0),
                int(connection.scalar(text("SELECT count(*) FROM mention_scores")) or 0),
            )
    except Exception:  # the schema is not there until the first process has migrated it
        return 0, 0


def measure(
    command: list[list[str]], env: dict[str, str], database: str, expected: int
) -> tuple[float, float]:
    """Seconds until every mention is stored, and until every one is scored."""
    engine = create_engine(database, poolclass=NullPool)
    started = time.monotonic()
    processes = [
        subprocess.Popen(c, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for c in command
    ]
    all_stored = None
    try:
        while True:
            stored, scored = counts(engine)
            if all_stored is None and stored >= expected:
                all_stored = time.monotonic() - started
            if scored >= expected:
                break
            if all(p.poll() is not None for p in processes):
                raise RuntimeError(f"processes exited with {stored}/{scored}/{expected}")
            time.sleep(0.1)
        all_scored = time.monotonic() - started
        for process in processes:
            process.wait(timeout=120)
    finally:
        engine.dispose()
    return all_stored or all_scored, all_scored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
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
    results: list[tuple[str, tuple[float, float]]] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            site = generate_site(Path(folder) / "site", args.pages)
            with serve_directory(site.root) as base_url:
                config = write_config(
                    Path(folder), [f"{base_url}/{p}" for p in site.paths], database
                )
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
                    "MONITOR_REDIS_URL": REDIS_URL,
                    "MONITOR_REDIS_PREFIX": prefix,
                }
                monitor = [sys.executable, "-m", "monitor"]
                reset_schema(database)
                seconds = measure(
                    [[*monitor, "crawl", "--config", str(config), "-q"]], env, database, expected
                )
                results.append(("`monitor crawl` (one process)", seconds))
                for workers in args.workers:
                    reset_schema(database)
                    subprocess.run(
                        [*monitor, "enqueue", "--config", str(config), "--fresh", "-q"],
                        env=env,
                        cwd=ROOT,
                        check=True,
                        stdout=subprocess.DEVNULL,
                    )
                    worker = [*monitor, "worker", "--config", str(config), "--idle", "1", "-q"]
                    seconds = measure([worker] * workers, env, database, expected)
                    results.append((f"{workers} × `monitor worker`", seconds))
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
    print(f"{args.pages} pages, {expected} mentions, PostgreSQL, {os.cpu_count()} CPUs")
    print(
        "| processes | all stored, s | stored/s | all scored, s | scored/s "
        "| × one worker (scored) | × `monitor crawl` (scored) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    single = results[0][1][1]
    one_worker = next((t[1] for label, t in results if label.startswith("1 ×")), None)
    for label, (stored, scored) in results:
        versus_one = f"{one_worker / scored:.2f}×" if one_worker else "—"
        print(
            f"| {label} | {stored:.1f} | {expected / stored:.0f} | {scored:.1f} "
            f"| {expected / scored:.0f} | {versus_one} | {single / scored:.2f}× |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
