"""Distributed crawling: several ``monitor worker`` processes share one crawl through Redis.

``enqueue`` pushes every enabled spider source's start URLs to a per-source Redis list; each
worker runs one redis-fed spider per spider source, with scrapy-redis's scheduler and duplicate
filter, so a request is queued once for all workers and fetched by whichever is free. Every
worker writes through the same pipeline into the shared store, whose unique key keeps a mention
stored once whoever found it.

Nothing is lost when a worker is killed at any point:

- scrapy-redis marks a request seen and then queues it, in two round trips to Redis; a kill in
  between loses it (and the pages behind it). Here one script does both.
- scrapy-redis takes start URLs off their list and then queues them. Here a worker *claims* a
  batch (moves it to a claim list under its name), makes requests of it, and queues them and
  drops the claim in one step.
- scrapy-redis forgets a request once a worker has popped it. Here a popped request is *leased*
  instead: kept in the worker's in-flight hash until its page's mentions are committed and its
  next-page request is queued.

A worker whose heartbeat lapses has its leases put back on the queue, and its claims back on
their start-URL list, by any worker that is still running.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.exceptions import ScrapyDeprecationWarning
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler
from scrapy_redis.spiders import RedisMixin
from twisted.internet import reactor, task

from monitor.config import Business, Config, SpiderSource
from monitor.crawl import SPIDERS, scrapy_settings
from monitor.runs import SourceOutcome
from monitor.scoring import IdleScorer
from monitor.store import Store
from monitor.touchpoints import Taxonomy
from spiders.base import SourceSpider

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Several deployments (or test runs) can share one Redis: every key starts with this prefix.
DEFAULT_KEY_PREFIX = "monitor"


def redis_url(config: Config) -> str:
    """MONITOR_REDIS_URL, else the config's ``redis_url``, else Redis on this machine."""
    return os.environ.get("MONITOR_REDIS_URL") or config.redis_url or DEFAULT_REDIS_URL


def key_prefix() -> str:
    return os.environ.get("MONITOR_REDIS_PREFIX") or DEFAULT_KEY_PREFIX


def queue_name(business: Business, source: SpiderSource) -> str:
    """The Redis name of one source's crawl: ``<prefix>:<business>:<source>``.

    It is also the spider's name, so scrapy-redis keeps each source's request queue
    (``…:requests``) and duplicate filter (``…:dupefilter``) apart from every other's.
    """
    return f"{key_prefix()}:{business.key}:{source.name}"


def spider_sources(config: Config) -> Iterator[tuple[Business, SpiderSource]]:
    for business in config.businesses:
        for source in business.sources:
            if isinstance(source, SpiderSource) and source.enabled:
                yield business, source


def connect(config: Config) -> Any:
    """A Redis client that has answered a PING: an unreachable Redis is an error, at once."""
    import redis

    client = redis.Redis.from_url(redis_url(config), socket_connect_timeout=5, socket_timeout=30)
    client.ping()
    return client


def enqueue(config: Config, fresh: bool = False) -> dict[str, int]:
    """Push every enabled spider source's start URLs; returns how many per queue.

    ``fresh`` first forgets each source's queue and seen-set (and what killed workers left
    leased or claimed), so a new crawl (next week's) fetches the pages again; without it a page
    already seen is not fetched twice.
    """
    client = connect(config)
    pushed: dict[str, int] = {}
    for business, source in spider_sources(config):
        name = queue_name(business, source)
        if fresh:
            # With them go the leases and claims that workers killed in the last crawl left.
            stale = [
                *client.scan_iter(match=f"{name}:leased:*"),
                *client.scan_iter(match=f"{name}:claimed:*"),
            ]
            client.delete(f"{name}:start_urls", f"{name}:requests", f"{name}:dupefilter", *stale)
        key = f"{name}:start_urls"
        if source.start_urls:
            client.rpush(key, *source.start_urls)
        pushed[key] = len(source.start_urls)
    return pushed


# A worker is presumed dead once its heartbeat is this old; it beats every third of that.
HEARTBEAT_SECONDS = 10
# An idle worker looks again this often, not only at the engine's heartbeat (every 5 s): once the
# other workers' leases end, it goes on to scoring after its --idle seconds, not up to 5 s later.
IDLE_RECHECK_SECONDS = 0.25
# Start URLs moved from their list to the request queue per round trip.
START_URL_BATCH = 200
WORKER_ID = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

# Queue a request unless the shared duplicate filter has seen it (no fingerprint: a request
# that is never filtered), in one step.
_QUEUE_IF_NEW = """
if ARGV[1] ~= '' and redis.call('sadd', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('zadd', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# Claim a batch of start URLs for this worker: move up to ARGV[1] of them from their list to
# the worker's claim list, and return the whole claim list (what an earlier batch left there too).
_CLAIM_START_URLS = """
local taken = redis.call('lrange', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #taken > 0 then
  redis.call('ltrim', KEYS[1], #taken, -1)
  redis.call('rpush', KEYS[2], unpack(taken))
end
return redis.call('lrange', KEYS[2], 0, -1)
"""

# Queue the requests made from a claim list, and forget the list, in one step. ARGV: per request
# a fingerprint as above, a score and the encoded request. Returns how many were queued.
_QUEUE_CLAIMED = """
local queued = 0
for i = 1, #ARGV, 3 do
  if ARGV[i] == '' or redis.call('sadd', KEYS[2], ARGV[i]) == 1 then
    redis.call('zadd', KEYS[3], ARGV[i + 1], ARGV[i + 2])
    queued = queued + 1
  end
end
redis.call('del', KEYS[1])
return queued
"""

# Put a dead worker's claimed start URLs back on their list, in one step.
_RETURN_CLAIMED = """
local claimed = redis.call('lrange', KEYS[1], 0, -1)
if #claimed > 0 then redis.call('rpush', KEYS[2], unpack(claimed)) end
redis.call('del', KEYS[1])
return #claimed
"""

# Pop the first request and lease it to this worker, in one step: a kill between the two
# would otherwise lose it.
_POP_AND_LEASE = """
local found = redis.call('zrange', KEYS[1], 0, 0)
if #found == 0 then return nil end
redis.call('zremrangebyrank', KEYS[1], 0, 0)
local lease = redis.sha1hex(found[1])
redis.call('hset', KEYS[2], lease, found[1])
return {lease, found[1]}
"""

# Put a dead worker's leases back on the queue and forget them, in one step, so two survivors
# cannot both requeue them.
_REQUEUE_LEASES = """
local leased = redis.call('hvals', KEYS[1])
for _, data in ipairs(leased) do redis.call('zadd', KEYS[2], 0, data) end
redis.call('del', KEYS[1])
return #leased
"""


_UNNAMED = object()


class LeasedPriorityQueue(PriorityQueue):
    """scrapy-redis's priority queue, except that a popped request stays leased (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Sent once, then called by their hash.
        self._pop_and_lease = self.server.register_script(_POP_AND_LEASE)
        self._queue_if_new = self.server.register_script(_QUEUE_IF_NEW)
        self._claim_start_urls = self.server.register_script(_CLAIM_START_URLS)
        self._queue_claimed = self.server.register_script(_QUEUE_CLAIMED)

    def _encode_request(self, request: scrapy.Request) -> bytes:
        """As scrapy-redis encodes a request (``Request.to_dict``), except that the callback's and
        errback's names are read off the methods: Scrapy looks for each among all the spider's
        members (``inspect.getmembers``), which cost more than the rest of queuing a request."""
        callback, errback = request.callback, request.errback
        names = {"callback": self._method_name(callback), "errback": self._method_name(errback)}
        if any(name is _UNNAMED for name in names.values()):
            return bytes(super()._encode_request(request))  # Scrapy's search, or its error
        request.callback = request.errback = None
        try:
            data = request.to_dict(spider=self.spider)
        finally:
            request.callback, request.errback = callback, errback
        data.update(names)
        return bytes(self.serializer.dumps(data))

    def _method_name(self, method: Any) -> Any:
        """The name of the spider's method ``method`` (anything not callable, as it is)."""
        if not callable(method):
            return method
        function = getattr(method, "__func__", None)
        name = getattr(function, "__name__", None)
        own = getattr(self.spider, name, None) if isinstance(name, str) else None
        if function is not None and getattr(own, "__func__", None) is function:
            return name
        return _UNNAMED

    def _entry(self, request: scrapy.Request, fingerprint: str) -> list[Any]:
        return [fingerprint, -request.priority, self._encode_request(request)]

    def push_if_new(self, request: scrapy.Request, fingerprint: str, seen_key: str) -> bool:
        """Queue ``request`` unless ``fingerprint`` is in the set ``seen_key``, which it joins."""
        args = self._entry(request, fingerprint)
        return bool(self._queue_if_new(keys=[seen_key, self.key], args=args))

    def claim_start_urls(self, list_key: str, claim_key: str, batch_size: int) -> list[bytes]:
        """Move up to ``batch_size`` entries from ``list_key`` to ``claim_key``; all it holds."""
        return list(self._claim_start_urls(keys=[list_key, claim_key], args=[batch_size]))

    def queue_claimed(
        self, claim_key: str, requests: list[tuple[scrapy.Request, str]], seen_key: str
    ) -> int:
        """Queue the (request, fingerprint) pairs that are new, and forget ``claim_key``."""
        args: list[Any] = []
        for request, fingerprint in requests:
            args += self._entry(request, fingerprint)
        return int(self._queue_claimed(keys=[claim_key, seen_key, self.key], args=args))

    def pop(self, timeout: int = 0) -> scrapy.Request | None:
        found = self._pop_and_lease(keys=[self.key, self.spider.lease_key])
        if not found:
            return None
        lease, data = found
        request: scrapy.Request = self._decode_request(data)
        request.meta["monitor_lease"] = lease.decode() if isinstance(lease, bytes) else lease
        return request


class SharedScheduler(Scheduler):
    """scrapy-redis's scheduler, except that a request is checked against the shared duplicate
    filter and queued in one step (``LeasedPriorityQueue.push_if_new``)."""

    queue: LeasedPriorityQueue

    def open(self, spider: Any) -> Any:
        # scrapy-redis says "Resuming crawl (N requests scheduled)" through ``Spider.log()``,
        # which Scrapy deprecates: every worker that joins a crawl under way would print the
        # deprecation as a warning, though the line itself is only debug output.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", r"Spider\.log\(\) is deprecated", ScrapyDeprecationWarning
            )
            return super().open(spider)

    def _fingerprint(self, request: scrapy.Request) -> str:
        return "" if request.dont_filter else str(self.df.request_fingerprint(request))

    def enqueue_request(self, request: scrapy.Request) -> bool:
        if not self.queue.push_if_new(request, self._fingerprint(request), self.df.key):
            self.df.log(request, self.spider)
            return False
        if self.stats:
            self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def move_start_urls(self, list_key: str, batch_size: int, spider: Any) -> bool:
        """Move one batch of start URLs from ``list_key`` to the request queue; False once the
        list is empty. An entry no request can be made from is logged and dropped.

        The batch is claimed first (so no other worker reads it too), then made into requests,
        then queued: a worker killed in between leaves its claim, which the others put back
        (``RedisFedSpider.requeue_dead_leases``)."""
        entries = self.queue.claim_start_urls(list_key, spider.claim_key, batch_size)
        if not entries:
            return False
        requests = []
        for entry in entries:
            try:
                request = spider.make_request_from_data(entry)
            except (ValueError, KeyError, TypeError) as exc:  # not text, not JSON, no URL
                log.error("start URL entry %r dropped: %s", entry[:200], exc)
                continue
            requests.append((request, self._fingerprint(request)))
        queued = self.queue.queue_claimed(spider.claim_key, requests, self.df.key)
        if queued > 0 and self.stats:
            self.stats.inc_value("scheduler/enqueued/redis", queued)
        return True

    def next_request(self) -> scrapy.Request | None:
        request = self.queue.pop()
        if request is not None and self.stats:
            self.stats.inc_value("scheduler/dequeued/redis")
        return request


class ReleaseLeases:
    """Spider middleware: a page's lease ends once everything its callback gave is handled.

    By then its next-page request is in Redis. Its mentions may still wait in the pipeline's
    batch: the lease is then held until that batch is committed (or the worker is idle), so a
    worker killed after the release has lost nothing, and pages are not committed one by one.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ReleaseLeases:
        return cls(crawler)

    def _release(self, response: Any) -> None:
        spider: Any = self.crawler.spider
        spider.release(response.request)

    def process_spider_output(self, response: Any, result: Any) -> Any:
        yield from result
        self._release(response)

    async def process_spider_output_async(self, response: Any, result: Any) -> Any:
        async for item in result:
            yield item
        self._release(response)


class RedisFedSpider(RedisMixin):
    """Mixed in before a ``SourceSpider``: start URLs come from the source's Redis list.

    The spider keeps asking Redis while idle and closes after ``MAX_IDLE_TIME_BEFORE_CLOSE``
    seconds with nothing to do — no queued request, and no other worker holding a lease — so
    a worker exits by itself once the shared crawl is done.
    """

    lease_key: str
    claim_key: str
    idle_scorer: IdleScorer | None = None
    """Set by ``run_worker`` when the worker scores: what it does instead of waiting idle."""
    _held: list[str]
    """Leases of pages handled whose mentions are not committed yet."""
    _look_again: Any
    """The pending call of ``_still_idle``, if any."""

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.redis_key = f"{spider.name}:start_urls"
        spider.lease_key = f"{spider.name}:leased:{WORKER_ID}"
        spider.claim_key = f"{spider.name}:claimed:{WORKER_ID}"
        spider._held = []
        spider._look_again = None
        spider.setup_redis(crawler)
        crawler.signals.connect(spider._beat_start, signal=signals.spider_opened)
        crawler.signals.connect(spider._beat_stop, signal=signals.spider_closed)
        return spider

    def _heartbeat_key(self, worker: str) -> str:
        return f"{key_prefix()}:workers:{worker}"

    def _beat(self) -> None:
        self.server.set(self._heartbeat_key(WORKER_ID), "1", ex=HEARTBEAT_SECONDS)

    def _beat_start(self, spider: Any) -> None:
        self._beat()
        self._heart = task.LoopingCall(self._beat)
        self._heart.start(HEARTBEAT_SECONDS / 3, now=False)

    def _beat_stop(self, spider: Any, reason: str) -> None:
        if self._heart.running:
            self._heart.stop()
        if self._look_again is not None and self._look_again.active():
            self._look_again.cancel()
        if reason == "finished":
            # Left over only by requests that failed (their errback gave no output to release).
            self.server.delete(self.lease_key)

    def release(self, request: scrapy.Request) -> None:
        lease = request.meta.get("monitor_lease")
        if not lease:
            return
        self._held.append(lease)
        if not any(ingest.pending for ingest in self._ingests()):
            self._release_held()
        # Otherwise the pipeline's next commit releases it (``Ingest.after_flush``).

    def _ingests(self) -> list[Any]:
        found = []
        for component in self.crawler.engine.scraper.itemproc.middlewares:
            ingest = getattr(component, "ingest", None)
            if ingest is not None:
                ingest.after_flush = self._release_held
                found.append(ingest)
        return found

    def _release_held(self) -> None:
        if self._held:
            held, self._held = self._held, []
            self.server.hdel(self.lease_key, *held)

    def _commit_and_release(self) -> None:
        for ingest in self._ingests():
            ingest.flush()
        self._release_held()

    def requeue_dead_leases(self) -> bool:
        """Requeue the leases (and claimed start URLs) of workers whose heartbeat lapsed; True
        while any worker holds some."""
        held = False
        for kind, script, back_to, what in (
            ("leased", _REQUEUE_LEASES, f"{self.name}:requests", "requests"),
            ("claimed", _RETURN_CLAIMED, self.redis_key, "claimed start URLs"),
        ):
            for key in self.server.scan_iter(match=f"{self.name}:{kind}:*"):
                name = key.decode() if isinstance(key, bytes) else key
                worker = name.rsplit(":", 1)[1]
                if worker == WORKER_ID:
                    continue
                if self.server.exists(self._heartbeat_key(worker)):
                    held = held or bool(self.server.exists(name))
                    continue
                requeued = self.server.eval(script, 2, name, back_to)
                if requeued:
                    self.logger.warning(
                        "worker %s stopped answering: %d of its %s put back on the queue",
                        worker,
                        requeued,
                        what,
                    )
                    held = True
        return held

    def spider_idle(self) -> None:
        # Nothing to crawl for now: commit what waits, so other workers see our leases end.
        self._commit_and_release()
        busy = self.requeue_dead_leases()
        # Another worker may still queue pages (or die and leave us its leases): not idle.
        # Neither while there are mentions to score: a batch now, then look at the queue again.
        scored = self.idle_scorer is not None and self.idle_scorer.step()
        if busy or scored:
            self.spider_idle_start_time = int(time.time())
        if self._look_again is None or not self._look_again.active():
            wait = 0 if scored else IDLE_RECHECK_SECONDS
            self._look_again = cast(Any, reactor).callLater(wait, self._still_idle)
        super().spider_idle()

    def _still_idle(self) -> None:
        """What the engine's heartbeat does: a spider still idle is told again; one whose queue
        got requests meanwhile (queued by other workers) has them fetched now."""
        engine = self.crawler.engine
        if engine.spider is not self:
            return
        # Scrapy's own, both; without them, the heartbeat does the same a few seconds later.
        tell = getattr(engine, "_spider_idle", None)
        nextcall = getattr(getattr(engine, "_slot", None), "nextcall", None)
        if not engine.spider_is_idle():
            if nextcall is not None:
                nextcall.schedule()
        elif tell is not None:
            tell()

    def schedule_next_requests(self) -> None:
        # Start URLs pushed while the crawl runs, moved as at the start; the engine's heartbeat
        # (every few seconds) then pops them.
        self._move_start_urls()

    def _move_start_urls(self) -> None:
        scheduler: Any = self.crawler.engine.scheduler
        while scheduler.move_start_urls(self.redis_key, START_URL_BATCH, self):
            pass

    async def start(self) -> AsyncIterator[Any]:
        # Move every waiting start URL to the shared request queue now, a batch at a time, and
        # give the engine nothing: it pops from the queue. scrapy-redis would take one batch
        # (16) whenever this worker runs out of work, so the crawl would drain to nothing, and
        # commit, before every batch; and start requests given to the engine one by one are
        # each queued, then popped, then looked for again before the next is read. Once in the
        # queue, a request is fetched by whichever worker is free, whoever moved it (an idle
        # worker looks at the queue every IDLE_RECHECK_SECONDS).
        self._move_start_urls()
        return
        yield

    def make_request_from_data(self, data: bytes) -> scrapy.Request:
        text = data.decode(self.redis_encoding or "utf-8")
        url = json.loads(text)["url"] if text.startswith("{") else text
        # Filtered like any other request (unlike a plain crawl's start URLs): a start URL
        # enqueued twice is then still fetched once by all the workers together.
        return scrapy.Request(url, callback=self.parse, errback=self.request_failed)


_REDIS_FED: dict[type[SourceSpider], type[SourceSpider]] = {}


def redis_fed(spider_class: type[SourceSpider]) -> type[SourceSpider]:
    """The redis-fed variant of one of our spiders (made once per class)."""
    if spider_class not in _REDIS_FED:
        _REDIS_FED[spider_class] = type(
            f"RedisFed{spider_class.__name__}", (RedisFedSpider, spider_class), {}
        )
    return _REDIS_FED[spider_class]


def worker_settings(config: Config, idle_seconds: int) -> Any:
    settings = scrapy_settings(config)
    settings.setdict(
        {
            "SCHEDULER": "monitor.distributed.SharedScheduler",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            # Keys are per source (see queue_name); the spider name already carries the prefix.
            "SCHEDULER_QUEUE_KEY": "%(spider)s:requests",
            "SCHEDULER_DUPEFILTER_KEY": "%(spider)s:dupefilter",
            # A worker that finishes first must not wipe the queue the others still work on.
            "SCHEDULER_PERSIST": True,
            "SCHEDULER_QUEUE_CLASS": "monitor.distributed.LeasedPriorityQueue",
            "SPIDER_MIDDLEWARES": {
                **settings.getdict("SPIDER_MIDDLEWARES"),
                # Nearest the engine: the scraper has handled all of a page's output when it ends.
                "monitor.distributed.ReleaseLeases": 10,
            },
            "REDIS_URL": redis_url(config),
            "MAX_IDLE_TIME_BEFORE_CLOSE": idle_seconds,
            "LOG_INSTALL_ROOT_HANDLER": False,
        },
        priority="cmdline",
    )
    return settings


def run_worker(
    config: Config,
    store: Store,
    taxonomy: Taxonomy,
    idle_seconds: int = 10,
    scorer: IdleScorer | None = None,
) -> list[SourceOutcome]:
    """Crawl from the shared Redis queues until every one has been idle ``idle_seconds``.

    With a ``scorer``, a spider with nothing to fetch scores unscored mentions, a batch at a
    time, and counts as idle only once none is left.
    """
    from monitor.crawl import _outcome

    connect(config)  # fail now, not after Scrapy has started
    process = CrawlerProcess(worker_settings(config, idle_seconds))
    planned: list[tuple[Business, SpiderSource, Crawler]] = []
    for business, source in spider_sources(config):
        business_id = store.business_id(business.key, business.name)
        source_id = store.source_id(business_id, source.name, source.type)
        crawler = process.create_crawler(redis_fed(SPIDERS[source.type]))
        process.crawl(
            crawler,
            name=queue_name(business, source),
            config=config,
            business=business,
            source=source,
            store=store,
            taxonomy=taxonomy,
            business_id=business_id,
            source_id=source_id,
            # Workers share a crawl and none holds the run lock, so none records a run, and
            # none stops paging at "known" reviews: that mark belongs to a complete crawl.
            run_id=None,
            known_until=None,
            idle_scorer=scorer,
        )
        planned.append((business, source, crawler))
    if not planned:
        return []
    process.start()
    outcomes = []
    for business, source, crawler in planned:
        outcome = _outcome(business, source, crawler)
        log.log(logging.WARNING if outcome.status == "failed" else logging.INFO, outcome.summary())
        outcomes.append(outcome)
    return outcomes


def clear(config: Config) -> int:
    """Delete every Redis key under this deployment's prefix (queues and duplicate filters)."""
    client = connect(config)
    keys = list(client.scan_iter(match=f"{key_prefix()}:*", count=1000))
    return int(client.delete(*keys)) if keys else 0
