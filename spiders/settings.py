"""Scrapy settings for every spider; ``monitor.crawl`` overrides them from the config's ``crawl``."""

BOT_NAME = "monitor"
SPIDER_MODULES = ["spiders"]
NEWSPIDER_MODULE = "spiders"

ITEM_PIPELINES = {"monitor.pipeline.MentionPipeline": 300}

# Politeness: the owner of a site decides (robots.txt), we identify ourselves, and we slow down
# when the site does.
ROBOTSTXT_OBEY = True
USER_AGENT = "monitor/0.1 (reputation monitor)"
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_DELAY = 0.5
# The per-domain limit alone is not enforced under the asyncio reactor (measured: 63 requests in
# flight to one host with 64/8), so the total is bounded too and the EPoll reactor is used.
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
TWISTED_REACTOR = "twisted.internet.epollreactor.EPollReactor"
# How many of one page's items go through the pipeline at once. Ours stores synchronously, so
# more buys nothing, while Scrapy starts that many cooperative tasks for every page whatever it
# yields: the default 100 cost about 2 ms of CPU a page (a tenth of a worker's time, profiled).
CONCURRENT_ITEMS = 16

DOWNLOAD_TIMEOUT = 30
# A review page is well under this; anything larger is a trap or a mistake, dropped and counted.
DOWNLOAD_MAXSIZE = 8 * 1024 * 1024
DOWNLOAD_WARNSIZE = 2 * 1024 * 1024
REDIRECT_MAX_TIMES = 5
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]
# Our retry waits between attempts (Retry-After, else exponential backoff); it replaces Scrapy's.
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "spiders.middlewares.BackoffRetryMiddleware": 550,
}
RETRY_BACKOFF_BASE = 1.0
RETRY_BACKOFF_MAX = 60.0
RETRY_AFTER_MAX = 300.0

HTTPCACHE_ENABLED = False
HTTPCACHE_DIR = "httpcache"

LOG_LEVEL = "INFO"
TELNETCONSOLE_ENABLED = False
FEED_EXPORT_ENCODING = "utf-8"
# The remote-control extension needs the asyncio reactor; we run EPoll (see above) and no console.
REMOTE_CONTROL_ENABLED = False
