"""Politeness, seen from the server's side: who we say we are, how hard we knock, how we wait."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FIXTURES, Site, crawl_sources
from tests.sites import fixture_site


def test_user_agent_comes_from_the_config(tmp_path: Path, site: Site) -> None:
    crawl_sources(
        tmp_path,
        [{"name": "r", "type": "structured_data", "start_urls": [f"{site.url}/rdfa/index.html"]}],
    )
    agents = {agent for _, _, agent in site.log.requests}
    assert agents == {"monitor-tests/1.0 (+https://example-bakery.example/contact)"}


def test_requests_in_flight_to_one_host_stay_within_the_limit(tmp_path: Path, site: Site) -> None:
    pages = [f"{site.url}/slow/page-{n}.html" for n in range(1, 9)]
    crawl_sources(
        tmp_path,
        [{"name": "slow", "type": "structured_data", "start_urls": pages}],
        crawl={"concurrent_requests": 8, "concurrent_per_domain": 2},
    )
    slow = [p for p in site.log.paths() if p.startswith("/slow/")]
    assert len(slow) == 8
    # Each slow page takes 0.3 s: with 8 allowed in total, only the per-host limit keeps it at 2.
    assert site.log.max_in_flight == 2


def test_retry_after_is_honoured(tmp_path: Path, site: Site) -> None:
    crawl = crawl_sources(
        tmp_path,
        [
            {
                "name": "busy",
                "type": "structured_data",
                "start_urls": [f"{site.url}/busy/reviews.html"],
            }
        ],
    )
    assert crawl.result.returncode == 0, crawl.result.stderr
    first, second = site.log.times("/busy/reviews.html")
    assert second - first >= 1.0  # the server said "Retry-After: 1"
    assert crawl.stats("busy")["monitor/retry_after_honoured"] == 1
    assert crawl.rows("SELECT count(*) FROM mentions") == [(2,)]


def test_server_errors_are_retried_with_growing_waits(tmp_path: Path, site: Site) -> None:
    crawl = crawl_sources(
        tmp_path,
        [{"name": "down", "type": "structured_data", "start_urls": [f"{site.url}/bad/error.html"]}],
        crawl={"retries": 2, "retry_backoff": 0.4},
    )
    times = site.log.times("/bad/error.html")
    assert len(times) == 3  # the first try and two retries
    # Backoff 0.4 s then 0.8 s, each with up to half taken off as jitter.
    assert times[1] - times[0] >= 0.2
    assert times[2] - times[1] >= 0.4
    assert crawl.stats("down")["monitor/request_failed/http_500"] == 1


def test_http_cache_serves_a_rerun_without_asking_the_site(tmp_path: Path) -> None:
    with fixture_site(FIXTURES / "sites") as (url, log):
        source = {"name": "r", "type": "structured_data", "start_urls": [f"{url}/rdfa/index.html"]}
        for _ in range(2):
            crawl = crawl_sources(tmp_path, [source], crawl={"http_cache": True})
            assert crawl.result.returncode == 0, crawl.result.stderr
        assert log.paths().count("/rdfa/index.html") == 1
