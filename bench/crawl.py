"""Crawl throughput: our structured-data spider and pipeline against a bare Scrapy spider.

Generates a local review site (N pages, each with 5 schema.org ``Review`` objects in JSON-LD and
the same reviews in HTML, ~15–25 KB like real pages), serves it on 127.0.0.1 with
``monitor.demo.serve_directory`` and crawls every page, each measurement in a fresh subprocess
(a Twisted reactor cannot be restarted in one process):

- **baseline**: a bare ``scrapy.Spider`` yielding each page's body text, no item pipeline;
- **ours**: ``StructuredDataSpider`` through ``MentionPipeline`` into a fresh SQLite database,
  run by ``monitor.crawl.crawl_sources`` exactly as ``monitor crawl`` does; then, timed apart,
  the scoring pass ``monitor crawl`` runs next (``monitor.scoring.score_pending``, one process
  per CPU), so the table also shows crawl + score end to end.

Both get the same start URLs and the same Scrapy settings (``monitor.crawl.scrapy_settings`` of
the same config, politeness off, 16 concurrent requests) and the logging ``monitor crawl`` sets
up (warnings only). Time is measured from ``spider_opened`` to ``spider_closed`` (the pipeline's
final flush included); pages are responses received, items are stored mentions for ours.
Each spider is measured ``--rounds`` times, alternating, and every round is reported.

    .venv/bin/python bench/crawl.py [--pages 2000] [--rounds 2] [--profile]

``--profile`` adds one more run of ours under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import html
import json
import os
import platform
import pstats
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: bench/ is on the path, the project is not

from bench.machine import (  # noqa: E402
    code_fingerprint,
    cpu_busy_share,
    load_average,
    package_version,
    shown_path,
)

DEFAULT_PAGES = 2000
MIN_PAGES = 2000
REVIEWS_PER_PAGE = 5
CONCURRENCY = 16
TARGET_RATIO = 0.7
# Above this share of all CPUs busy before the crawls, another process competes with them.
BUSY_SHARE = 0.2
# The whole script (site generation, every crawl, clean-up) must end by itself in ~5 minutes.
DEFAULT_TIME_LIMIT_S = 285.0
BUSINESS_NAME = "Harbour Lane Cycles"
SLUG = "harbour-lane-cycles"
PUBLIC_BASE = "https://reviews.example"
SEED = 20261123
_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
_URL = re.compile(r"https?://\S+")
_NUMBER = re.compile(r"\d+(\.\d+)?")

# ---------------------------------------------------------------------------------------------
# The review site
# ---------------------------------------------------------------------------------------------

FIRST_NAMES = (
    "Amira",
    "Ben",
    "Chloe",
    "Dan",
    "Elif",
    "Fatima",
    "George",
    "Hannah",
    "Imran",
    "Jess",
    "Kofi",
    "Laura",
    "Marek",
    "Niamh",
    "Owen",
    "Priya",
    "Quentin",
    "Rosa",
    "Sam",
    "Tomasz",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
    "Zoe",
    "Aidan",
    "Bea",
    "Callum",
    "Divya",
    "Erin",
)
PLACES = (
    "Leeds",
    "Bradford",
    "Harrogate",
    "Wakefield",
    "York",
    "Otley",
    "Ilkley",
    "Halifax",
    "Headingley",
    "Pudsey",
)
STAFF = ("Jamie", "Sofia", "Tom", "Becky", "Arjun", "Callum", "Mel", "Dave")
BIKES = (
    "road bike",
    "hybrid",
    "e-bike",
    "gravel bike",
    "kids' balance bike",
    "folding bike",
    "cargo bike",
    "mountain bike",
)
JOBS = (
    "full service",
    "puncture repair",
    "gear tune-up",
    "brake bleed",
    "wheel true",
    "bike fit",
    "chain and cassette swap",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

POSITIVE = (
    "Booked a {job} through the website in about two minutes and got a confirmation email straight away.",
    "{staff} in the workshop talked me through exactly what needed doing and why.",
    "Really friendly welcome the moment I walked in, even though the shop was busy.",
    "My {bike} was ready a day earlier than promised and rides like new.",
    "Fair price for the work, and they didn't try to upsell me anything I didn't need.",
    "Paying was quick, card or cash, and the receipt listed every part they had fitted.",
    "The {bike} I ordered online was delivered to {place} on time and properly packed.",
    "{staff} spent half an hour helping my daughter choose her first {bike}.",
    "They rang me on {day} to check a part before fitting it, which I really appreciated.",
    "Great range of accessories and the staff actually ride, so the advice is honest.",
    "Had a small complaint about a rattle after the service and they sorted it the same afternoon, no fuss.",
    "Parking right outside made dropping the {bike} off easy.",
    "The phone was answered on the second ring and they squeezed me in that week.",
    "Best bike shop in {place}, I have been coming here for years.",
    "Clear quote up front and the final bill matched it to the penny.",
    "{staff} remembered my name and my last repair, which was a nice touch.",
    "Loved the free coffee while I waited for a {job}.",
    "Workmanship is excellent: gears shift crisply and the brakes feel brand new.",
)
NEGATIVE = (
    "Waited three weeks for a {job} that was supposed to take four days.",
    "Nobody answered the phone on {day} or {day2}, I must have called ten times.",
    "The website said the {bike} was in stock but it was not, and nobody told me until I chased them.",
    "{staff} was quite dismissive when I asked about the warranty.",
    "Charged for a {job} I never asked for and had to argue to get it taken off.",
    "The delivery to {place} was late and the box arrived damaged.",
    "My complaint email has had no reply after two weeks.",
    "Queue at the counter was ages and only one person serving.",
    "The online booking page kept crashing at the payment step.",
    "Picked up my {bike} and the rear brake was still rubbing.",
    "Refund took over a month and I had to ring four times to get it.",
    "Felt rushed and ignored, they clearly preferred the club riders.",
    "Prices have gone up a lot and the service has gone down.",
    "Was promised a call back on {day} and never got one.",
)
NEUTRAL = (
    "Went in on a {day} morning for a {job} on my {bike}.",
    "The shop is on the corner near the station in {place}.",
    "I have used them twice now, once for a {job} and once for a new {bike}.",
    "They open at nine on weekdays and ten on Sundays.",
    "The workshop is at the back and you can see the mechanics working.",
    "Bought my {bike} here last spring.",
    "Collection was on {day} after work.",
)
TITLES = {
    5: ("Brilliant service", "Can't fault them", "Friendly and fast", "Highly recommend"),
    4: ("Good shop, small niggle", "Solid service", "Would use again", "Helpful staff"),
    3: ("Mixed experience", "OK but slow", "Good work, poor communication", "Average"),
    2: ("Disappointing", "Slow and unhelpful", "Not what I expected", "Poor follow-up"),
    1: ("Avoid", "Still waiting for my refund", "Terrible communication", "Never again"),
}
OFFSETS = (0, 0, 60, 60, -300, 330, 600)


@dataclass(frozen=True)
class Review:
    review_id: str
    author: str
    published: datetime
    title: str
    body: str
    rating: int


def _fill(template: str, rng: random.Random) -> str:
    day, day2 = rng.sample(DAYS, 2)
    return template.format(
        staff=rng.choice(STAFF),
        bike=rng.choice(BIKES),
        job=rng.choice(JOBS),
        place=rng.choice(PLACES),
        day=day,
        day2=day2,
    )


def review_body(rating: int, rng: random.Random) -> str:
    """30–80 words of sentences whose tone follows the star rating, sometimes in two paragraphs."""
    share_positive = {5: 0.9, 4: 0.75, 3: 0.45, 2: 0.2, 1: 0.05}[rating]
    target = rng.randint(30, 80)
    sentences: list[str] = []
    words = 0
    for _ in range(60):
        if words >= target:
            break
        roll = rng.random()
        if roll < 0.2:
            pool: tuple[str, ...] = NEUTRAL
        elif roll < 0.2 + 0.8 * share_positive:
            pool = POSITIVE
        else:
            pool = NEGATIVE
        sentence = _fill(rng.choice(pool), rng)
        length = len(sentence.split())
        if words + length > 80:
            if words >= 30:
                break
            continue
        if sentence not in sentences:
            sentences.append(sentence)
            words += length
    if len(sentences) > 3 and rng.random() < 0.3:
        cut = rng.randint(1, len(sentences) - 1)
        return " ".join(sentences[:cut]) + "\n\n" + " ".join(sentences[cut:])
    return " ".join(sentences)


def page_reviews(page: int, pages: int, rng: random.Random) -> list[Review]:
    """The reviews of one page: newest on page 1, a few days apart, with varied UTC offsets."""
    newest = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
    reviews = []
    for slot in range(REVIEWS_PER_PAGE):
        number = (pages - page + 1) * REVIEWS_PER_PAGE - slot
        moment = newest - timedelta(hours=7 * ((page - 1) * REVIEWS_PER_PAGE + slot))
        moment -= timedelta(minutes=rng.randint(0, 300))
        offset = timezone(timedelta(minutes=rng.choice(OFFSETS)))
        rating = rng.choices((5, 4, 3, 2, 1), weights=(40, 25, 12, 10, 13))[0]
        reviews.append(
            Review(
                review_id=f"{PUBLIC_BASE}/{SLUG}#r-{100000 + number}",
                author=f"{rng.choice(FIRST_NAMES)} {rng.choice('ABCDEFGHJKLMNOPRSTW')}.",
                published=moment.astimezone(offset).replace(second=0, microsecond=0),
                title=rng.choice(TITLES[rating]),
                body=review_body(rating, rng),
                rating=rating,
            )
        )
    return reviews


def page_name(page: int) -> str:
    return f"reviews/{SLUG}/page-{page:05d}.html"


def json_ld(reviews: list[Review]) -> str:
    """The LocalBusiness JSON-LD a review site embeds, safe inside a <script> element."""
    data = {
        "@context": "https://schema.org",
        "@type": "LocalBusiness",
        "name": BUSINESS_NAME,
        "url": "https://harbourlanecycles.example/",
        "address": {"@type": "PostalAddress", "addressLocality": "Leeds", "addressCountry": "GB"},
        "aggregateRating": {
            "@type": "AggregateRating",
            "ratingValue": 3.9,
            "reviewCount": 10000,
            "bestRating": 5,
            "worstRating": 1,
        },
        "review": [
            {
                "@type": "Review",
                "@id": r.review_id,
                "author": {"@type": "Person", "name": r.author},
                "datePublished": r.published.isoformat(),
                "name": r.title,
                "reviewBody": r.body,
                "reviewRating": {
                    "@type": "Rating",
                    "ratingValue": r.rating,
                    "bestRating": 5,
                    "worstRating": 1,
                },
            }
            for r in reviews
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False).replace("</", "<\\/")


def review_article(review: Review, rng: random.Random) -> str:
    anchor = review.review_id.rsplit("#", 1)[1]
    paragraphs = "".join(
        f'\n      <p class="review-text">{html.escape(p)}</p>' for p in review.body.split("\n\n")
    )
    stars = "★" * review.rating + "☆" * (5 - review.rating)
    return f"""
    <article class="review" id="{anchor}" data-review-id="{anchor[2:]}">
      <header class="review-header">
        <img class="avatar" src="/static/avatars/{rng.randint(1, 40)}.png" alt="" width="40" height="40">
        <span class="reviewer-name">{html.escape(review.author)}</span>
        <span class="reviewer-meta">{rng.randint(1, 30)} reviews · {rng.choice(PLACES)}</span>
      </header>
      <div class="stars" data-rating="{review.rating}" aria-label="Rated {review.rating} out of 5">{stars}</div>
      <time class="review-date" datetime="{review.published.isoformat()}">{review.published:%d %B %Y}</time>
      <h3 class="review-title">{html.escape(review.title)}</h3>{paragraphs}
      <footer class="review-actions">
        <button class="helpful" type="button">Helpful ({rng.randint(0, 25)})</button>
        <a class="share" href="{review.review_id}">Share</a>
        <a class="report" href="/report?review={anchor[2:]}" rel="nofollow">Report</a>
      </footer>
    </article>"""


CATEGORIES = (
    "Bike shops",
    "Bike repair",
    "Cafés",
    "Restaurants",
    "Pubs",
    "Bakeries",
    "Hairdressers",
    "Barbers",
    "Dentists",
    "Opticians",
    "Vets",
    "Garages",
    "MOT centres",
    "Plumbers",
    "Electricians",
    "Builders",
    "Locksmiths",
    "Estate agents",
    "Solicitors",
    "Gyms",
    "Florists",
    "Garden centres",
    "Furniture",
    "Removals",
    "Dry cleaners",
    "Hotels",
    "Phone repair",
)
FOOTER_COLUMNS = {
    "About us": "Who we are|How reviews work|Trust and safety|Careers|Press|Investors|Blog|Contact",
    "For businesses": "Claim your page|Reply to reviews|Review invitations|Widgets|Analytics|Plans"
    "|Partner programme|Business help centre|API",
    "Help": "Help centre|Writing a review|Reporting a review|Account settings|Accessibility"
    "|Guidelines|Content integrity report",
    "Legal": "Terms of use|Privacy policy|Cookie policy|Modern slavery statement|Complaints"
    "|Legal notices|Sitemap",
}
STYLE = """
  body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
  .site-header{display:flex;align-items:center;gap:1rem;padding:.75rem 2rem;background:#fff;border-bottom:1px solid #e5e5e5}
  .site-nav ul{display:flex;flex-wrap:wrap;gap:.5rem 1rem;list-style:none;margin:0;padding:.5rem 2rem}
  .site-nav a{color:#333;text-decoration:none;font-size:.875rem}.site-nav a:hover{text-decoration:underline}
  main{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,1fr);gap:2rem;max-width:72rem;margin:2rem auto}
  .review{background:#fff;border:1px solid #e5e5e5;border-radius:8px;padding:1rem 1.25rem;margin-bottom:1rem}
  .review-header{display:flex;align-items:center;gap:.5rem}.avatar{border-radius:50%}
  .stars{color:#00a67e;letter-spacing:2px}.review-date{color:#666;font-size:.8rem}
  .review-title{margin:.5rem 0 .25rem;font-size:1.05rem}.review-text{line-height:1.5;margin:.25rem 0}
  .review-actions{display:flex;gap:1rem;font-size:.8rem}.helpful{background:none;border:0;color:#555}
  .histogram li{display:grid;grid-template-columns:4rem 1fr 3rem;align-items:center;gap:.5rem}
  .bar{height:.5rem;background:#e5e5e5;border-radius:4px}.bar span{display:block;height:100%;background:#00a67e}
  .similar li{padding:.5rem 0;border-bottom:1px solid #eee}.similar .rating{color:#00a67e}
  .pagination{display:flex;gap:.5rem;justify-content:center;padding:1rem 0}
  .site-footer{background:#1b1b1b;color:#ddd;padding:2rem;display:grid;grid-template-columns:repeat(4,1fr);gap:2rem}
  .site-footer a{color:#ddd;text-decoration:none;font-size:.85rem}.site-footer ul{list-style:none;padding:0}
  .cookie-banner{position:fixed;bottom:0;left:0;right:0;background:#fff;border-top:1px solid #ccc;padding:1rem 2rem}
  @media (max-width:48rem){main{grid-template-columns:1fr}.site-footer{grid-template-columns:1fr 1fr}}
"""
TRACKING = """
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());
  gtag('config', 'G-BENCH000', {anonymize_ip: true, page_type: 'business_reviews'});
  window.__CONSENT__ = {necessary: true, analytics: false, marketing: false, version: 7};
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('.helpful').forEach(function (button) {
      button.addEventListener('click', function () { button.disabled = true; });
    });
  });
"""


def page_chrome_nav() -> str:
    links = "".join(
        f'\n      <li><a href="/categories/{c.lower().replace(" ", "-").replace("&", "and")}">'
        f"{html.escape(c)}</a></li>"
        for c in CATEGORIES
    )
    return f'<nav class="site-nav" aria-label="Categories">\n    <ul>{links}\n    </ul>\n  </nav>'


def page_chrome_footer() -> str:
    columns = []
    for heading, names in FOOTER_COLUMNS.items():
        links = "".join(
            f'<li><a href="/{heading.split()[0].lower()}/{n.lower().replace(" ", "-")}">'
            f"{html.escape(n)}</a></li>"
            for n in names.split("|")
        )
        columns.append(f"\n    <div><h4>{heading}</h4><ul>{links}</ul></div>")
    return f'<footer class="site-footer">{"".join(columns)}\n  </footer>'


NAV = page_chrome_nav()
FOOTER = page_chrome_footer()


def similar_businesses(rng: random.Random) -> str:
    """The sidebar of nearby businesses every review site shows; its length varies page to page."""
    items = []
    for i in range(rng.randint(1, 16)):
        name = f"{rng.choice(PLACES)} {rng.choice(('Cycles', 'Bikes', 'Wheels', 'Velo'))} {i + 1}"
        items.append(
            f'\n        <li><a href="/business/{name.lower().replace(" ", "-")}">'
            f'{html.escape(name)}</a> <span class="rating">{rng.uniform(2.5, 4.9):.1f}</span> '
            f'<span class="count">{rng.randint(3, 900)} reviews</span>'
            f'<p class="blurb">{html.escape(_fill(rng.choice(NEUTRAL), rng))}</p></li>'
        )
    return "".join(items)


def review_page(page: int, pages: int, rng: random.Random) -> str:
    reviews = page_reviews(page, pages, rng)
    links = []
    if page > 1:
        links.append(f'<link rel="prev" href="page-{page - 1:05d}.html">')
    if page < pages:
        links.append(f'<link rel="next" href="page-{page + 1:05d}.html">')
    histogram = "".join(
        f'<li><span>{stars} stars</span><span class="bar"><span style="width:{share}%"></span>'
        f"</span><span>{share}%</span></li>"
        for stars, share in ((5, 40), (4, 25), (3, 12), (2, 10), (1, 13))
    )
    articles = "".join(review_article(r, rng) for r in reviews)
    return f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{BUSINESS_NAME}, Leeds – Reviews (page {page} of {pages}) | reviews.example</title>
<meta name="description" content="Read 10,000 customer reviews of {BUSINESS_NAME}, bike shop and repair workshop in Leeds. Rated 3.9 out of 5.">
<link rel="canonical" href="{PUBLIC_BASE}/{SLUG}?page={page}">
{"".join(links)}
<link rel="stylesheet" href="/static/site.css">
<style>{STYLE}</style>
<script type="application/ld+json">
{json_ld(reviews)}
</script>
<script>{TRACKING}</script>
</head>
<body>
  <header class="site-header">
    <a class="logo" href="/">reviews.example</a>
    <form class="search" action="/search" role="search"><input name="q" type="search" placeholder="Search businesses"><button>Search</button></form>
    <a href="/login">Log in</a> <a class="cta" href="/business">For businesses</a>
  </header>
  {NAV}
  <ol class="breadcrumb"><li><a href="/">Home</a></li><li><a href="/categories/bike-shops">Bike shops</a></li><li><a href="/cities/leeds">Leeds</a></li><li>{BUSINESS_NAME}</li></ol>
  <main>
    <section class="reviews" aria-label="Reviews">
      <h1>{BUSINESS_NAME}</h1>
      <p class="summary">Bike shop and repair workshop · 14 Harbour Lane, Leeds LS1 · Rated 3.9 out of 5 from 10,000 reviews</p>
      <ul class="histogram">{histogram}</ul>
      <h2>Reviews, page {page} of {pages}</h2>{articles}
      <nav class="pagination" aria-label="Pages">
        <a href="page-{max(page - 1, 1):05d}.html" rel="prev">Previous</a>
        <span>Page {page} of {pages}</span>
        <a href="page-{min(page + 1, pages):05d}.html" rel="next">Next</a>
      </nav>
    </section>
    <aside class="similar" aria-label="Similar businesses nearby">
      <h2>People also looked at</h2>
      <ul>{similar_businesses(rng)}
      </ul>
    </aside>
  </main>
  {FOOTER}
  <div class="cookie-banner" role="dialog" aria-label="Cookies">
    <p>We use cookies to keep you signed in, to understand how the site is used and to show relevant adverts. You can accept all cookies, reject those that are not necessary or choose which ones to allow. Read our cookie policy to find out more.</p>
    <button type="button">Accept all</button> <button type="button">Reject non-essential</button> <a href="/legal/cookie-policy">Choose</a>
  </div>
</body>
</html>
"""


@dataclass(frozen=True)
class Site:
    root: Path
    paths: list[str]
    sizes: list[int]


def generate_site(root: Path, pages: int) -> Site:
    """Write ``pages`` review pages and a robots.txt under ``root``; deterministic for a seed."""
    rng = random.Random(SEED)
    (root / "reviews" / SLUG).mkdir(parents=True)
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n", encoding="utf-8")
    paths, sizes = [], []
    for page in range(1, pages + 1):
        name = page_name(page)
        data = review_page(page, pages, rng).encode("utf-8")
        (root / name).write_bytes(data)
        paths.append(name)
        sizes.append(len(data))
    return Site(root, paths, sizes)


# ---------------------------------------------------------------------------------------------
# The measurements (each runs in its own subprocess: ``--worker baseline|ours``)
# ---------------------------------------------------------------------------------------------


def bench_config(urls: list[str], database: str) -> Any:
    """One business, one structured_data source over every page, politeness off."""
    from monitor.config import parse_config

    raw = {
        "database": database,
        "user_agent": "monitor/0.1 (crawl benchmark; 127.0.0.1 only)",
        "crawl": {
            "obey_robots": False,
            "autothrottle": False,
            "download_delay": 0,
            "concurrent_requests": CONCURRENCY,
            "concurrent_per_domain": CONCURRENCY,
            "stop_at_known": False,
        },
        "businesses": [
            {
                "name": BUSINESS_NAME,
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
    return parse_config(raw, ROOT / "bench" / "crawl-bench.yaml")


class SpiderTimer:
    """Wall time from ``spider_opened`` to ``spider_closed``, and the crawl's stats."""

    def __init__(self) -> None:
        self.opened: float | None = None
        self.closed: float | None = None
        self.crawler: Any = None

    def attach(self, crawler: Any) -> None:
        from scrapy import signals

        self.crawler = crawler
        crawler.signals.connect(self._on_opened, signal=signals.spider_opened)
        crawler.signals.connect(self._on_closed, signal=signals.spider_closed)

    def _on_opened(self, spider: Any) -> None:
        self.opened = time.perf_counter()

    def _on_closed(self, spider: Any, reason: str) -> None:
        self.closed = time.perf_counter()

    def result(self) -> dict[str, Any]:
        stats = self.crawler.stats.get_stats() if self.crawler and self.crawler.stats else {}
        seconds = (
            self.closed - self.opened
            if self.opened is not None and self.closed is not None
            else None
        )
        return {
            "seconds": seconds,
            "pages": int(stats.get("response_received_count", 0)),
            "items_scraped": int(stats.get("item_scraped_count", 0)),
            "finish_reason": str(stats.get("finish_reason", "unknown")),
            "errors": int(stats.get("log_count/ERROR", 0)),
            "warnings": int(stats.get("log_count/WARNING", 0)),
        }


def measure_baseline(urls: list[str], database: str) -> dict[str, Any]:
    """A bare spider with the same settings and no item pipeline."""
    import scrapy
    from scrapy.crawler import CrawlerProcess

    from monitor.crawl import scrapy_settings

    class PageTextSpider(scrapy.Spider):
        name = "page_text"

        def parse(self, response: Any, **kwargs: Any) -> Iterator[dict[str, str]]:
            text = " ".join(response.xpath("//body//text()").getall())
            yield {"url": response.url, "text": text}

    settings = scrapy_settings(bench_config(urls, database))
    settings.set("LOG_INSTALL_ROOT_HANDLER", False, priority="cmdline")
    settings.set("ITEM_PIPELINES", {}, priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(PageTextSpider)
    timer = SpiderTimer()
    timer.attach(crawler)
    started = time.perf_counter()
    process.crawl(crawler, start_urls=urls)
    process.start()
    result = timer.result()
    result.update(total_seconds=time.perf_counter() - started, items=result["items_scraped"])
    return result


def measure_ours(urls: list[str], database: str) -> dict[str, Any]:
    """``crawl_sources`` as ``monitor crawl`` calls it; items are the mentions stored."""
    from scrapy.crawler import CrawlerProcess
    from sqlalchemy import func, select

    from monitor.crawl import crawl_sources
    from monitor.scoring import score_pending
    from monitor.store import Mention, Store
    from monitor.touchpoints import load_taxonomy

    config = bench_config(urls, database)
    store = Store.open(database)
    taxonomy = load_taxonomy(config)
    run_id = store.start_run("bench")
    timer = SpiderTimer()
    # crawl_sources creates its crawler itself; wrapping create_crawler only connects the timer.
    create_crawler = CrawlerProcess.create_crawler

    def create_timed_crawler(process: CrawlerProcess, spidercls: Any) -> Any:
        crawler = create_crawler(process, spidercls)
        timer.attach(crawler)
        return crawler

    CrawlerProcess.create_crawler = create_timed_crawler  # type: ignore[method-assign,assignment]
    started = time.perf_counter()
    outcomes = crawl_sources(config, store, taxonomy, run_id)
    total = time.perf_counter() - started
    scoring_started = time.perf_counter()
    scoring = score_pending(store, taxonomy, config.scoring_processes)
    score_seconds = time.perf_counter() - scoring_started
    store.finish_run(run_id, "ok" if all(o.status == "ok" for o in outcomes) else "partial")
    with store.engine.connect() as connection:
        mentions = int(connection.scalar(select(func.count()).select_from(Mention)) or 0)
    store.close()
    result = timer.result()
    result.update(
        total_seconds=total,
        items=mentions,
        score_seconds=score_seconds,
        scored=scoring.scored,
        score_processes=config.scoring_processes,
        outcome=[f"{o.source}: {o.status} {o.new} new {o.reason}".strip() for o in outcomes],
    )
    return result


def run_worker(args: argparse.Namespace) -> int:
    from monitor.cli import configure_logging

    configure_logging(verbose=0, quiet=False)  # what `monitor crawl` does: warnings only
    urls = Path(args.urls).read_text(encoding="utf-8").split()
    measure = measure_baseline if args.worker == "baseline" else measure_ours
    profiler = cProfile.Profile() if args.profile_out else None
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    if profiler is not None:
        profiler.enable()
    result = measure(urls, args.db)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile_out)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    result["max_rss_mb"] = cpu_after.ru_maxrss / 1024
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0


# ---------------------------------------------------------------------------------------------
# The driver: site, server, subprocesses, table
# ---------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    spider: str
    round: int
    result: dict[str, Any]
    problem: str = ""

    @property
    def seconds(self) -> float | None:
        value = self.result.get("seconds")
        return float(value) if value else None

    def per_second(self, key: str) -> float | None:
        seconds = self.seconds
        if seconds is None or self.problem:
            return None
        return float(self.result.get(key, 0)) / seconds


def run_measurement(
    spider: str,
    round_number: int,
    work: Path,
    deadline: float,
    profile_out: Path | None = None,
) -> Measurement:
    """One crawl in a fresh interpreter, killed (with its process group) at the deadline."""
    database = f"sqlite:///{work / f'{spider}-{round_number}.db'}"
    result_file = work / f"{spider}-{round_number}.json"
    log_file = work / f"{spider}-{round_number}.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        spider,
        "--urls",
        str(work / "urls.txt"),
        "--db",
        database,
        "--result",
        str(result_file),
    ]
    if profile_out is not None:
        command += ["--profile-out", str(profile_out)]
    timeout = deadline - time.monotonic()
    if timeout < 5:
        return Measurement(spider, round_number, {}, "skipped: out of time")
    with log_file.open("w", encoding="utf-8") as log:
        worker = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(worker)
            return Measurement(spider, round_number, {}, f"killed after {timeout:.0f} s")
        except BaseException:  # Ctrl-C: the worker runs in its own session and would outlive us
            _stop(worker)
            raise
    output = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    if code != 0 or not result_file.exists():
        tail = " | ".join(output[-5:])
        return Measurement(spider, round_number, {}, f"exit {code}: {tail}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result["log_lines"] = len(output)
    result["log_kinds"] = log_kinds(output)
    return Measurement(spider, round_number, result)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """Kill a worker and whatever it started (its own process group)."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def log_kinds(lines: list[str], top: int = 5) -> list[tuple[int, str]]:
    """What a worker logged, grouped by message with timestamps, URLs and numbers masked."""
    kinds: Counter[str] = Counter()
    for line in lines:
        text = _LOG_TIMESTAMP.sub("", line)
        text = _URL.sub("<url>", text)
        kinds[_NUMBER.sub("<n>", text)[:140]] += 1
    return [(count, kind) for kind, count in kinds.most_common(top)]


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_table(measurements: list[Measurement], pages: int, rounds: int) -> None:
    print(
        f"\n{'round':>5}  {'spider':<8} {'pages':>6} {'items':>6} {'open→close s':>12} "
        f"{'total s':>8} {'cpu s':>6} {'pages/s':>8} {'items/s':>8}"
    )
    for m in measurements:
        r = m.result
        print(
            f"{m.round:>5}  {m.spider:<8} {r.get('pages', 0):>6} {r.get('items', 0):>6} "
            f"{_fmt(m.seconds, 2):>12} {_fmt(r.get('total_seconds'), 2):>8} "
            f"{_fmt(r.get('cpu_seconds')):>6} {_fmt(m.per_second('pages')):>8} "
            f"{_fmt(m.per_second('items')):>8}" + (f"  [{m.problem}]" if m.problem else "")
        )
    expected = {"baseline": (pages, pages), "ours": (pages, pages * REVIEWS_PER_PAGE)}
    for m in measurements:
        want_pages, want_items = expected[m.spider]
        r = m.result
        if not m.problem and (r.get("pages") != want_pages or r.get("items") != want_items):
            print(
                f"  note: {m.spider} round {m.round} got {r.get('pages')} pages / "
                f"{r.get('items')} items, expected {want_pages} / {want_items}"
            )
        if not m.problem and r.get("finish_reason") != "finished":
            print(f"  note: {m.spider} round {m.round} ended with {r.get('finish_reason')}")
        for outcome in r.get("outcome", []):
            if ": ok " not in outcome:
                print(f"  note: {m.spider} round {m.round} source outcome: {outcome}")
        if r.get("log_lines"):
            print(f"  note: {m.spider} round {m.round} logged {r['log_lines']} lines:")
            for count, kind in r.get("log_kinds", []):
                print(f"        {count:>5} × {kind}")
    print()
    for round_number in range(1, rounds + 1):
        by_spider = {m.spider: m for m in measurements if m.round == round_number}
        base = by_spider.get("baseline")
        ours = by_spider.get("ours")
        if base and ours and base.per_second("pages") and ours.per_second("pages"):
            ratio = (ours.per_second("pages") or 0) / (base.per_second("pages") or 1)
            print(f"round {round_number}: ours/baseline pages/s = {ratio:.2f}")
        if ours and ours.seconds and ours.result.get("score_seconds") is not None:
            r = ours.result
            whole = ours.seconds + r["score_seconds"]
            line = (
                f"round {round_number}: then the scoring pass ({r['score_processes']} processes) "
                f"judged {r['scored']} mentions in {r['score_seconds']:.2f} s "
                f"({r['scored'] / r['score_seconds']:.0f}/s); crawl + score "
                f"{r.get('pages', 0) / whole:.1f} pages/s"
            )
            if base and base.seconds:
                line += f" = {r.get('pages', 0) / whole / (base.per_second('pages') or 1):.2f}× baseline"
            print(line)
    best = {}
    for spider in ("baseline", "ours"):
        rates = [m.per_second("pages") for m in measurements if m.spider == spider]
        known = [r for r in rates if r is not None]
        best[spider] = max(known) if known else None
    if best["baseline"] and best["ours"]:
        ratio = best["ours"] / best["baseline"]
        verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
        print(
            f"best of {rounds}: baseline {best['baseline']:.1f} pages/s, ours {best['ours']:.1f} "
            f"pages/s, ours/baseline = {ratio:.2f} ({verdict} the ≥ {TARGET_RATIO}× target)"
        )


def _short_path(filename: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def print_profile(profile_file: Path, top: int = 20) -> None:
    """Where the profiled crawl spent its time: by own time, then our code by cumulative time.

    Scrapy's and Twisted's callback chains dominate any cumulative ranking, so the second list
    keeps only functions under ``monitor/`` and ``spiders/``, as a share of ``crawl_sources``.
    cProfile inflates code that makes many small calls (VADER, Twisted): read shares, not seconds.
    """
    stats: dict[Any, Any] = pstats.Stats(str(profile_file)).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    crawl = max((v[3] for k, v in stats.items() if k[2] == "crawl_sources"), default=total)
    print(f"\nprofile of ours (cProfile): {total:.1f} s own time, crawl_sources {crawl:.1f} s")
    sections = (
        ("own time, any code", 2, lambda filename: True),
        (
            "cumulative time, monitor/ and spiders/",
            3,
            lambda filename: filename.startswith((f"{ROOT}/monitor/", f"{ROOT}/spiders/")),
        ),
    )
    for title, index, wanted in sections:
        print(f"\ntop {top} by {title}:")
        print(f"{'own s':>8} {'cum s':>8} {'% crawl':>8} {'calls':>9}  function")
        ranked = sorted(
            (item for item in stats.items() if wanted(item[0][0])),
            key=lambda item: item[1][index],
            reverse=True,
        )
        for (filename, line, name), (_, calls, own, cumulative, _) in ranked[:top]:
            where = f"{_short_path(filename)}:{line}" if line else filename
            share = 100 * (own if index == 2 else cumulative) / crawl
            print(f"{own:>8.2f} {cumulative:>8.2f} {share:>7.1f}% {calls:>9}  {name} ({where})")


def run_benchmark(args: argparse.Namespace) -> int:
    from monitor.demo import serve_directory

    began = time.monotonic()
    deadline = began + args.time_limit
    print("Crawl benchmark (bench/crawl.py): bare Scrapy spider vs. our spider + pipeline")
    print(f"command: {' '.join([shown_path(sys.executable), *sys.argv])}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"python {platform.python_version()}, scrapy {package_version('scrapy')}, "
        f"twisted {package_version('twisted')}, extruct {package_version('extruct')}, "
        f"CPUs {os.cpu_count()}, {platform.platform()}"
    )
    print(f"code: sha256 of monitor/**/*.py + spiders/*.py = {code_fingerprint()}")
    busy = cpu_busy_share()
    print(
        f"load average at start: {load_average()}; CPUs busy just before: "
        + ("unknown" if busy is None else f"{busy:.0%}")
    )
    if busy is not None and busy > BUSY_SHARE:
        print("  note: something else is using the CPUs; both crawls will be slowed")
    with tempfile.TemporaryDirectory(prefix="bench-crawl-") as temp:
        work = Path(temp)
        site = generate_site(work / "site", args.pages)
        sizes = sorted(site.sizes)
        print(
            f"site: {len(site.paths)} pages × {REVIEWS_PER_PAGE} reviews, "
            f"{sum(sizes) / len(sizes) / 1024:.1f} KB/page on average "
            f"({sizes[0] / 1024:.1f}–{sizes[-1] / 1024:.1f} KB), "
            f"generated in {time.monotonic() - began:.1f} s"
        )
        print(
            f"settings: CONCURRENT_REQUESTS {CONCURRENCY}, per domain {CONCURRENCY}, no delay, "
            "no autothrottle, robots.txt not fetched, logging as `monitor crawl` (warnings)"
        )
        measurements: list[Measurement] = []
        with serve_directory(site.root) as base_url:
            urls = [f"{base_url}/{path}" for path in site.paths]
            (work / "urls.txt").write_text("\n".join(urls) + "\n", encoding="utf-8")
            print(f"served by monitor.demo.serve_directory at {base_url}")
            for round_number in range(1, args.rounds + 1):
                for spider in ("baseline", "ours"):
                    measurement = run_measurement(spider, round_number, work, deadline)
                    measurements.append(measurement)
                    print(
                        f"  round {round_number} {spider}: "
                        + (measurement.problem or f"{_fmt(measurement.seconds, 2)} s"),
                        flush=True,
                    )
            print_table(measurements, args.pages, args.rounds)
            if args.profile:
                profile_file = work / "ours.prof"
                profiled = run_measurement("ours", 0, work, deadline, profile_file)
                if profiled.problem:
                    print(f"\nprofiled run: {profiled.problem}")
                else:
                    print(
                        f"\nprofiled run of ours: {_fmt(profiled.seconds, 2)} s open→close "
                        f"under cProfile ({profiled.result.get('pages')} pages)"
                    )
                    print_profile(profile_file)
    print(
        f"\nwhole benchmark: {time.monotonic() - began:.0f} s; server stopped, temp files removed; "
        f"load average at end: {load_average()}"
    )
    failed = [m for m in measurements if m.problem]
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES, help="review pages to serve")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each spider")
    parser.add_argument(
        "--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, help="seconds for everything"
    )
    parser.add_argument("--profile", action="store_true", help="also profile ours with cProfile")
    parser.add_argument("--worker", choices=("baseline", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pages < 1 or args.rounds < 1:
        parser.error("--pages and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    if args.pages < MIN_PAGES:
        print(f"note: {args.pages} pages is a quick try; figures need at least {MIN_PAGES}")
    try:
        return run_benchmark(args)
    except KeyboardInterrupt:
        print("\ninterrupted: worker stopped, server stopped, temp files removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
