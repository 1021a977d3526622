"""Several `monitor worker`s share one crawl through the real Redis and store into one PostgreSQL.

The site is generated: ten chains of review pages joined by rel=next, each chain's last page
pointing at the next chain's first (also a start URL), so the shared duplicate filter is what
keeps a page from being fetched twice.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import scrapy
import yaml
from scrapy.exceptions import ScrapyDeprecationWarning
from scrapy.utils.test import get_crawler
from sqlalchemy import create_engine, text

from monitor.distributed import LeasedPriorityQueue, SharedScheduler
from tests.conftest import run_monitor
from tests.sites import fixture_site
from tests.test_scoring import collect

REDIS_URL = os.environ.get("MONITOR_TEST_REDIS", "redis://127.0.0.1:6379/0")
CHAINS, PAGES_PER_CHAIN, REVIEWS_PER_PAGE = 10, 30, 2
PAGES = CHAINS * PAGES_PER_CHAIN


def page_path(chain: int, page: int) -> str:
    return f"/slow/c{chain}/p{page}.html"


def write_site(root: Path) -> None:
    import json

    for chain in range(CHAINS):
        for page in range(PAGES_PER_CHAIN):
            if page + 1 < PAGES_PER_CHAIN:
                after = page_path(chain, page + 1)
            else:
                after = page_path((chain + 1) % CHAINS, 0)
            reviews = [
                {
                    "@type": "Review",
                    "@id": f"https://reviews.example/#/schema/Review/c{chain}-p{page}-r{n}",
                    "author": {"@type": "Person", "name": f"Reviewer {chain}-{page}-{n}"},
                    "datePublished": f"2026-{1 + page % 11:02d}-{1 + n:02d}T10:00:00Z",
                    "reviewBody": f"The staff were friendly and the bread was fresh (visit {chain}.{page}.{n}).",
                    "reviewRating": {"@type": "Rating", "ratingValue": str(1 + (page + n) % 5)},
                }
                for n in range(REVIEWS_PER_PAGE)
            ]
            data = {"@context": "https://schema.org", "@graph": reviews}
            path = root / page_path(chain, page).lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "<!DOCTYPE html><html><head><meta charset='utf-8'>"
                f"<link rel='next' href='{after}'>"
                f"<script type='application/ld+json'>{json.dumps(data)}</script>"
                f"</head><body><p>Chain {chain}, page {page}</p></body></html>",
                encoding="utf-8",
            )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards. No Redis: a failure."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}). The distributed crawl is tested "
            "against a real Redis; start it, or point MONITOR_TEST_REDIS at one.",
            pytrace=False,
        )
    prefix = f"monitor-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def shared_db(postgres_database: str) -> str:
    engine = create_engine(postgres_database)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return postgres_database


def write_config(tmp_path: Path, url: str, db: str) -> Path:
    config = {
        "database": db,
        "user_agent": "monitor-tests/1.0 (+https://example-bakery.example/contact)",
        "crawl": {
            "autothrottle": False,
            "download_delay": 0,
            "retries": 1,
            "retry_backoff": 0.1,
            "concurrent_requests": 4,
            "concurrent_per_domain": 2,
            "scoring_processes": 1,
        },
        "businesses": [
            {
                "name": "Example Bakery",
                "sources": [
                    {
                        "name": "reviews",
                        "type": "structured_data",
                        "max_pages": 1000,
                        "start_urls": [url + page_path(c, 0) for c in range(CHAINS)],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "business.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    """A test that fails while its workers run would otherwise leave them running."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.communicate()


def start_worker(
    config: Path, env: dict[str, str], cwd: Path, idle: int = 3, *options: str
) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    environment.update(env)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "worker",
            "--config",
            str(config),
            "--idle",
            str(idle),
            *options,
        ],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _started.append(process)
    return process


def page_fetches(paths: list[str]) -> Counter[str]:
    return Counter(p for p in paths if p.startswith("/slow/c"))


def stored_mentions(db: str) -> Counter[str]:
    engine = create_engine(db)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT external_id FROM mentions")).scalars().all()
    engine.dispose()
    return Counter(rows)


def scored_mentions(db: str) -> tuple[int, int]:
    """Score rows, and distinct mentions that have touchpoints."""
    engine = create_engine(db)
    with engine.connect() as connection:
        scores = connection.scalar(text("SELECT count(*) FROM mention_scores"))
        mapped = connection.scalar(
            text("SELECT count(DISTINCT mention_id) FROM touchpoint_assignments")
        )
    engine.dispose()
    return int(scores or 0), int(mapped or 0)


def expected_pages() -> set[str]:
    return {page_path(c, p) for c in range(CHAINS) for p in range(PAGES_PER_CHAIN)}


def test_two_workers_fetch_every_page_once_and_store_every_mention_once(
    tmp_path: Path, redis_prefix: str, shared_db: str
) -> None:
    write_site(tmp_path / "site")
    with fixture_site(tmp_path / "site", slow_seconds=0.02) as (url, log):
        config = write_config(tmp_path, url, shared_db)
        env = {"MONITOR_REDIS_URL": REDIS_URL, "MONITOR_REDIS_PREFIX": redis_prefix}
        # What workers killed in last week's crawl left: --fresh forgets it with the rest.
        client = redis.Redis.from_url(REDIS_URL)
        source_key = f"{redis_prefix}:example-bakery:reviews"
        client.hset(f"{source_key}:leased:last-week", "lease", b"an old request")
        client.rpush(f"{source_key}:claimed:last-week", url + "/an-old-start-url")
        enqueued = run_monitor("enqueue", "--config", str(config), "--fresh", cwd=tmp_path, env=env)
        assert enqueued.returncode == 0, enqueued.stderr
        assert f"{CHAINS} start URLs enqueued" in enqueued.stdout
        assert list(client.scan_iter(match=f"{source_key}:*:last-week")) == []
        # Entries no request can be made from, pushed by hand among the good ones; and start
        # URLs claimed by a worker that died before it queued them.
        start_urls = f"{source_key}:start_urls"
        client.rpush(start_urls, b"{not json", b"not a url")
        ghost_claim = f"{source_key}:claimed:ghost-worker"
        client.rpush(ghost_claim, url + page_path(3, 5), url + page_path(7, 1))
        workers = [start_worker(config, env, tmp_path) for _ in range(2)]
        outputs = [w.communicate(timeout=240) for w in workers]
        paths = log.paths()
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    errors = "".join(err for _out, err in outputs)
    assert "start URL entry b'{not json' dropped" in errors
    assert "start URL entry b'not a url' dropped" in errors
    assert "worker ghost-worker stopped answering: 2 of its claimed start URLs put back" in errors
    assert not client.exists(ghost_claim)
    fetched = page_fetches(paths)
    assert set(fetched) == expected_pages()
    assert [p for p, n in fetched.items() if n > 1] == []
    # Both workers took part: their new mentions add up to all of them, each more than none.
    new = [int(out.split()[0]) for out, _ in outputs]
    assert sum(new) == PAGES * REVIEWS_PER_PAGE and min(new) > 0, outputs
    mentions = stored_mentions(shared_db)
    assert len(mentions) == PAGES * REVIEWS_PER_PAGE
    assert max(mentions.values()) == 1
    # Then the workers shared the scoring pass: every mention judged once, by one of them.
    scored = [int(out.splitlines()[1].split()[0]) for out, _ in outputs]
    assert sum(scored) == PAGES * REVIEWS_PER_PAGE, outputs
    assert scored_mentions(shared_db) == (PAGES * REVIEWS_PER_PAGE, PAGES * REVIEWS_PER_PAGE)


def test_the_surviving_worker_finishes_the_queue_when_another_is_killed(
    tmp_path: Path, redis_prefix: str, shared_db: str
) -> None:
    write_site(tmp_path / "site")
    with fixture_site(tmp_path / "site", slow_seconds=0.05) as (url, log):
        config = write_config(tmp_path, url, shared_db)
        env = {"MONITOR_REDIS_URL": REDIS_URL, "MONITOR_REDIS_PREFIX": redis_prefix}
        enqueued = run_monitor("enqueue", "--config", str(config), "--fresh", cwd=tmp_path, env=env)
        assert enqueued.returncode == 0, enqueued.stderr
        doomed = start_worker(config, env, tmp_path)
        # This one leaves scoring to a separate pass (below).
        survivor = start_worker(config, env, tmp_path, 5, "--no-score")
        deadline = time.monotonic() + 60
        while len(page_fetches(log.paths())) < PAGES // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(page_fetches(log.paths())) < PAGES, "the crawl ended before the kill"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        out, err = survivor.communicate(timeout=240)
        paths = log.paths()
    assert survivor.returncode == 0, err
    assert "put back on the queue" in err  # the killed worker held requests, and they came back
    fetched = page_fetches(paths)
    assert set(fetched) == expected_pages(), sorted(expected_pages() - set(fetched))[:10]
    mentions = stored_mentions(shared_db)
    assert len(mentions) == PAGES * REVIEWS_PER_PAGE
    assert max(mentions.values()) == 1
    # --no-score: the survivor judged nothing (nor did the killed worker, still crawling); a
    # separate `monitor score` pass then judges every mention once.
    assert "mentions scored" not in out
    assert scored_mentions(shared_db) == (0, 0)
    scoring = run_monitor("score", "--config", str(config), cwd=tmp_path, env=env)
    assert scoring.returncode == 0, scoring.stderr
    assert scored_mentions(shared_db) == (PAGES * REVIEWS_PER_PAGE, PAGES * REVIEWS_PER_PAGE)


def test_a_worker_with_nothing_to_crawl_scores_and_still_takes_new_pages(
    tmp_path: Path, redis_prefix: str, shared_db: str
) -> None:
    """Scoring fills a worker's idle time: mentions already stored are judged while it waits
    for pages (long before its --idle seconds pass), and pages pushed meanwhile are crawled."""
    backlog = 2000
    collect(shared_db, backlog).close()
    write_site(tmp_path / "site")
    with fixture_site(tmp_path / "site", slow_seconds=0.02) as (url, log):
        config = write_config(tmp_path, url, shared_db)
        env = {"MONITOR_REDIS_URL": REDIS_URL, "MONITOR_REDIS_PREFIX": redis_prefix}
        worker = start_worker(config, env, tmp_path, 600)

        def wait_for(done: Any) -> None:
            deadline = time.monotonic() + 120
            while not done() and worker.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)

        wait_for(lambda: scored_mentions(shared_db)[0] == backlog)
        assert worker.poll() is None, worker.communicate()
        assert scored_mentions(shared_db)[0] == backlog
        enqueued = run_monitor("enqueue", "--config", str(config), cwd=tmp_path, env=env)
        assert enqueued.returncode == 0, enqueued.stderr
        total = backlog + PAGES * REVIEWS_PER_PAGE
        wait_for(lambda: scored_mentions(shared_db)[0] == total)
        assert worker.poll() is None, worker.communicate()
        worker.send_signal(signal.SIGINT)  # as Ctrl-C: Scrapy shuts the crawl down cleanly
        out, err = worker.communicate(timeout=60)
        paths = log.paths()
    assert worker.returncode == 0, err
    fetched = page_fetches(paths)
    assert set(fetched) == expected_pages()
    assert max(fetched.values()) == 1
    assert out.splitlines() == [
        f"{PAGES * REVIEWS_PER_PAGE} new mentions",
        f"{total} mentions scored",
    ]
    assert len(stored_mentions(shared_db)) == total
    assert scored_mentions(shared_db)[0] == total


def test_start_urls_are_claimed_by_one_worker_then_queued_in_one_step(redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    spider = scrapy.Spider(name=f"{redis_prefix}:bakery:reviews")
    queue = LeasedPriorityQueue(client, spider, "%(spider)s:requests")
    start_urls, seen = f"{spider.name}:start_urls", f"{spider.name}:dupefilter"
    claim = f"{spider.name}:claimed:this-test"
    urls = [f"http://127.0.0.1:9/{page}".encode() for page in ("a", "b", "c")]
    client.rpush(start_urls, *urls)
    # Claimed: off the list, where no other worker reads them, and kept under this worker's name.
    assert queue.claim_start_urls(start_urls, claim, 2) == urls[:2]
    assert client.lrange(start_urls, 0, -1) == urls[2:]
    assert client.lrange(claim, 0, -1) == urls[:2]
    # A claim that was not queued (the batch failed) comes back with the next one.
    assert queue.claim_start_urls(start_urls, claim, 2) == urls
    assert client.llen(start_urls) == 0
    # Queued: the unseen ones join the queue, and the claim is forgotten, in one step.
    client.sadd(seen, "fingerprint-c")
    requests = [(scrapy.Request(u.decode()), f"fingerprint-{u.decode()[-1]}") for u in urls]
    assert queue.queue_claimed(claim, requests, seen) == 2
    assert not client.exists(claim)
    assert client.smembers(seen) == {b"fingerprint-a", b"fingerprint-b", b"fingerprint-c"}
    assert sorted(client.zrange(queue.key, 0, -1)) == sorted(
        queue._encode_request(request) for request, _ in requests[:2]
    )


class _Spider(scrapy.Spider):
    name = "encoding"

    def parse(self, response: Any) -> Any:
        return None

    def failed(self, failure: Any) -> None:
        return None


def test_a_queued_request_encodes_as_scrapy_encodes_it(redis_prefix: str) -> None:
    spider = _Spider(name=f"{redis_prefix}:encoding")
    queue = LeasedPriorityQueue(redis.Redis.from_url(REDIS_URL), spider, "%(spider)s:requests")
    requests = [
        scrapy.Request("http://127.0.0.1:9/a", callback=spider.parse, errback=spider.failed),
        scrapy.Request("http://127.0.0.1:9/b", meta={"page": 2}, priority=3, dont_filter=True),
        scrapy.FormRequest("http://127.0.0.1:9/c", formdata={"q": "x"}, callback=spider.parse),
    ]
    for request in requests:
        assert pickle.loads(queue._encode_request(request)) == request.to_dict(spider=spider)
        # The request itself is left as it was.
        assert request.to_dict(spider=spider) == pickle.loads(queue._encode_request(request))
    # A callback that is not one of the spider's methods fails as Scrapy fails.
    with pytest.raises(ValueError, match="not an instance method"):
        queue._encode_request(scrapy.Request("http://127.0.0.1:9/d", callback=print))


def test_a_worker_joining_a_crawl_under_way_prints_no_deprecation(redis_prefix: str) -> None:
    """scrapy-redis announces a queue it resumes through Scrapy's deprecated ``Spider.log()``;
    every worker after the first would print the deprecation warning."""
    crawler = get_crawler(
        _Spider,
        {
            "REDIS_URL": REDIS_URL,
            "SCHEDULER_QUEUE_CLASS": "monitor.distributed.LeasedPriorityQueue",
            "SCHEDULER_QUEUE_KEY": "%(spider)s:requests",
            "SCHEDULER_DUPEFILTER_KEY": "%(spider)s:dupefilter",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_PERSIST": True,
        },
    )
    spider = _Spider.from_crawler(crawler, name=f"{redis_prefix}:resumed")
    queued = LeasedPriorityQueue(redis.Redis.from_url(REDIS_URL), spider, "%(spider)s:requests")
    queued.push(scrapy.Request("http://127.0.0.1:9/a", callback=spider.parse))
    scheduler = SharedScheduler.from_crawler(crawler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler.open(spider)
    assert len(scheduler.queue) == 1  # it did resume the queue
    assert [str(w.message) for w in caught if w.category is ScrapyDeprecationWarning] == []
