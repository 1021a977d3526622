"""Reddit through real PRAW, pointed at a local server that answers with Reddit's own JSON.

The server stands in for both www.reddit.com (the OAuth token) and oauth.reddit.com (the
listings); PRAW finds it through the ``praw_*`` environment variables, as a user's setup would.
``time.sleep`` raises unless a test is about waiting, so nothing can silently wait.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import praw.config
import pytest

from tests.api_server import ApiRequest, ApiServer, Reply, Route, api_server, fixture_json
from tests.conftest import collect

TOKEN = "/api/v1/access_token"
ALL_SEARCH = "/r/all/search/"
LEEDS_SEARCH = "/r/leeds/search/"
LEEDS_NEW = "/r/leeds/new"
LEEDS_COMMENTS = "/r/leeds/comments/"
LISTINGS = [ALL_SEARCH, LEEDS_SEARCH, LEEDS_NEW, LEEDS_COMMENTS]
STORED = [
    "reddit:t1_c0001",
    "reddit:t1_c0003",
    "reddit:t3_bw0003",
    "reddit:t3_bw0004",
    "reddit:t3_bw0005",
]
PRAW_VARIABLES = (
    "praw_site",
    "praw_client_id",
    "praw_client_secret",
    "praw_username",
    "praw_password",
    "praw_user_agent",
    "praw_refresh_token",
    "praw_oauth_url",
    "praw_reddit_url",
    "praw_short_url",
)


def _answer(name: str) -> Route:
    return lambda request: Reply(body=fixture_json("reddit", name))


def _all_search(request: ApiRequest) -> Reply:
    page = 2 if request.query.get("after") == "t3_bw0003" else 1
    return Reply(body=fixture_json("reddit", f"all-search-page-{page}.json"))


def _routes(**changes: Route) -> dict[str, Route]:
    routes = {
        TOKEN: _answer("access_token.json"),
        ALL_SEARCH: _all_search,
        LEEDS_SEARCH: _answer("leeds-search.json"),
        LEEDS_NEW: _answer("leeds-new.json"),
        LEEDS_COMMENTS: _answer("leeds-comments.json"),
    }
    for path, route in changes.items():
        routes[{"all": ALL_SEARCH, "new": LEEDS_NEW, "token": TOKEN}[path]] = route
    return routes


SOURCE: dict[str, Any] = {"name": "reddit", "type": "reddit", "subreddits": ["leeds"]}


@pytest.fixture(autouse=True)
def _isolated_praw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No praw.ini but the test's own, no praw_* variable from the developer's shell."""
    for name in PRAW_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("APPDATA", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(praw.config.Config, "CONFIG", None)  # PRAW caches praw.ini per process


@pytest.fixture(autouse=True)
def _only_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach {address}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Waits asked for; a test that expects none fails on the first (see ``allow_sleep``)."""
    asked: list[float] = []

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"time.sleep({seconds}) in a test that should not wait")

    monkeypatch.setattr(time, "sleep", no_sleep)
    return asked


def allow_sleep(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float], *, really: bool = False
) -> None:
    """Record the waits; only sleep for real when the test measures them from the server."""
    real_sleep = threading.Event().wait

    def record(seconds: float) -> None:
        sleeps.append(seconds)
        if really:
            real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", record)


@pytest.fixture
def reddit(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ApiServer]]:
    """Start the stand-in Reddit with some routes changed, and point PRAW at it."""
    servers = []

    def start(**changes: Route) -> ApiServer:
        context = api_server(_routes(**changes))
        server = context.__enter__()
        servers.append(context)
        monkeypatch.setenv("praw_client_id", "PLACEHOLDER-CLIENT-ID")
        monkeypatch.setenv("praw_client_secret", "PLACEHOLDER-CLIENT-SECRET")
        monkeypatch.setenv("praw_oauth_url", server.url)
        monkeypatch.setenv("praw_reddit_url", server.url)
        monkeypatch.setenv("praw_short_url", f"{server.url}/short")
        return server

    yield start
    for context in servers:
        context.__exit__(None, None, None)


def _listing_requests(server: ApiServer) -> list[ApiRequest]:
    return [r for r in server.requests if r.path != TOKEN]


def test_search_and_subreddit_listings_become_mentions(
    tmp_path: Path, reddit: Callable[..., ApiServer]
) -> None:
    server = reddit()
    collected = collect(tmp_path, [SOURCE])
    [outcome] = collected.outcomes
    assert (outcome.status, outcome.new, outcome.reason) == ("ok", 5, "")
    # One token for the run, by application-only OAuth with the credentials from the environment.
    token = server.requests[0]
    assert (token.method, token.path) == ("POST", TOKEN)
    assert token.body == b"grant_type=client_credentials"
    basic = base64.b64encode(b"PLACEHOLDER-CLIENT-ID:PLACEHOLDER-CLIENT-SECRET").decode()
    assert token.headers["Authorization"] == f"Basic {basic}"
    listings = _listing_requests(server)
    assert [r.path for r in listings] == [ALL_SEARCH, ALL_SEARCH, *LISTINGS[1:]]
    assert {r.headers["Authorization"] for r in listings} == {"bearer PLACEHOLDER-ACCESS-TOKEN"}
    assert all(r.headers["User-Agent"].startswith("monitor-tests/1.0") for r in server.requests)
    query = '"Brightwater Cycles" OR "Brightwater Bikes" OR @brightwatercycles'
    assert listings[0].query | {"q": query} == {
        "q": query,
        "sort": "new",
        "restrict_sr": "False",
        "syntax": "lucene",
        "t": "all",
        "limit": "100",
        "raw_json": "1",
    }
    assert listings[2].query["restrict_sr"] == "True"
    assert outcome.detail["requests"] == len(server.requests)

    rows = collected.rows(
        "SELECT external_id, kind, url, author, title, text, published_at, extra FROM mentions "
        "ORDER BY external_id"
    )
    assert [r[0] for r in rows] == STORED
    deleted_author, comment, _, link_post, late_order = rows
    assert comment[1:6] == (
        "comment",
        "https://www.reddit.com/r/leeds/comments/bw0005/"
        "brightwater_cycles_online_order_three_weeks_late/c0003/",
        "leeds_commuter_88",
        None,
        "Same with Brightwater Cycles: paid for next-day, waited eleven days. "
        "Their workshop is still the best in Leeds though.",
    )
    assert str(comment[6]).startswith("2026-11-19 21:10:00")
    assert deleted_author[3] is None  # the account is gone; the comment still counts
    # A link post has no text of its own: its title is what it says.
    assert link_post[1] == "post" and link_post[4] == link_post[5]
    assert late_order[4] == "Brightwater Cycles online order three weeks late"
    assert '"platform": "reddit"' in late_order[7] and '"num_comments": 23' in late_order[7]
    assert '"subreddit": "leeds"' in late_order[7] and '"score": 47' in late_order[7]


def test_pages_through_a_listing_by_its_after_token(
    tmp_path: Path, reddit: Callable[..., ApiServer]
) -> None:
    server = reddit()
    collected = collect(tmp_path, [{**SOURCE, "subreddits": []}])
    assert [r.query.get("after") for r in server.requests if r.path == ALL_SEARCH] == [
        None,
        "t3_bw0003",
    ]
    # Both items of page 2 were looked at (one removed, one about the Lake), and nothing more
    # was asked for: page 2's "after" is null.
    detail = collected.outcomes[0].detail
    assert detail["monitor/removed_or_deleted"] == 1
    assert detail["monitor/not_about_business"] == 1
    assert len(server.requests) == 3


def test_an_item_in_two_listings_is_stored_once(
    tmp_path: Path, reddit: Callable[..., ApiServer]
) -> None:
    reddit()
    collected = collect(tmp_path, [SOURCE])
    # bw0005 is in r/all's search, r/leeds's search and r/leeds/new.
    assert collected.outcomes[0].detail["monitor/listed_twice"] == 2
    assert collected.rows(
        "SELECT count(*) FROM mentions WHERE external_id = 'reddit:t3_bw0005'"
    ) == [(1,)]
    assert collected.rows("SELECT count(*) FROM mentions") == [(5,)]


def test_removed_deleted_and_unrelated_items_are_counted_not_stored(
    tmp_path: Path, reddit: Callable[..., ApiServer]
) -> None:
    reddit()
    collected = collect(tmp_path, [SOURCE])
    detail = collected.outcomes[0].detail
    # bw0002 was removed by the moderators, c0002 deleted by its author.
    assert detail["monitor/removed_or_deleted"] == 2
    # bw0001 is about Brightwater Lake (excluded), bw0006 a coffee question in r/leeds/new.
    assert detail["monitor/not_about_business"] == 2
    stored = {r[0] for r in collected.rows("SELECT external_id FROM mentions")}
    assert stored.isdisjoint(
        {"reddit:t3_bw0002", "reddit:t1_c0002", "reddit:t3_bw0001", "reddit:t3_bw0006"}
    )
    assert collected.rows("SELECT count(*) FROM mentions WHERE text LIKE '%[removed]%'") == [(0,)]


def test_html_and_script_in_a_post_are_stored_as_plain_text(
    tmp_path: Path, reddit: Callable[..., ApiServer]
) -> None:
    reddit()
    collected = collect(tmp_path, [SOURCE])
    [(text,)] = collected.rows("SELECT text FROM mentions WHERE external_id = 'reddit:t3_bw0003'")
    assert text == (
        "Had my bike fit done at Brightwater Cycles yesterday. Really thorough & friendly."
    )


def test_rerun_stops_each_listing_at_what_it_has_read(
    tmp_path: Path, reddit: Callable[..., ApiServer]
) -> None:
    server = reddit()
    collect(tmp_path, [SOURCE])
    first_run = len(server.requests)
    second = collect(tmp_path, [SOURCE])
    assert (second.outcomes[0].status, second.outcomes[0].new) == ("empty", 0)
    assert second.rows("SELECT count(*) FROM mentions") == [(5,)]
    # Each listing's first page already starts at known items: no second page is asked for.
    again = [r for r in server.requests[first_run:] if r.path != TOKEN]
    assert [r.path for r in again] == LISTINGS
    assert all("after" not in r.query for r in again)
    [(cursor,)] = second.rows("SELECT cursor FROM sources WHERE name = 'reddit'")
    newest = fixture_json("reddit", "leeds-comments.json")["data"]["children"][0]["data"]
    assert cursor == str(int(newest["created_utc"]))


def test_rerun_stores_only_what_is_newer(tmp_path: Path, reddit: Callable[..., ApiServer]) -> None:
    reddit()
    collect(tmp_path, [SOURCE])
    # A new post has appeared at the top of r/leeds/new; older ones follow it.
    later = reddit(new=_answer("leeds-new-later.json"))
    second = collect(tmp_path, [SOURCE])
    assert second.outcomes[0].new == 1
    assert second.rows("SELECT external_id FROM mentions WHERE run_id = 2") == [
        ("reddit:t3_bw0007",)
    ]
    # bw0006 (the coffee question, read last time) is where r/leeds/new stopped: not re-judged.
    assert "monitor/not_about_business" not in second.outcomes[0].detail
    assert [r.path for r in _listing_requests(later)] == LISTINGS


def test_rate_limited_request_waits_for_retry_after_then_completes(
    tmp_path: Path,
    reddit: Callable[..., ApiServer],
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    allow_sleep(monkeypatch, sleeps, really=True)
    calls = {"n": 0}

    def limited(request: ApiRequest) -> Reply:
        calls["n"] += 1
        if calls["n"] == 1:
            return Reply(429, {"message": "Too Many Requests", "error": 429}, {"Retry-After": "1"})
        return _all_search(request)

    server = reddit(all=limited)
    collected = collect(tmp_path, [SOURCE])
    assert (collected.outcomes[0].status, collected.outcomes[0].new) == ("ok", 5)
    assert sleeps == [1.0]
    tries = [r for r in server.requests if r.path == ALL_SEARCH and "after" not in r.query]
    assert len(tries) == 2 and tries[1].at - tries[0].at >= 1.0


def test_rate_limited_request_waits_for_the_ratelimit_reset(
    tmp_path: Path,
    reddit: Callable[..., ApiServer],
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    allow_sleep(monkeypatch, sleeps)
    calls = {"n": 0}

    def limited(request: ApiRequest) -> Reply:
        calls["n"] += 1
        if calls["n"] == 1:
            headers = {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": "1000",
                "x-ratelimit-reset": "42",
            }
            return Reply(429, {"message": "Too Many Requests", "error": 429}, headers)
        return _all_search(request)

    reddit(all=limited)
    collected = collect(tmp_path, [SOURCE])
    assert collected.outcomes[0].status == "ok"
    assert sleeps == [42.0]


def test_prawcore_paces_requests_by_the_ratelimit_headers(
    tmp_path: Path,
    reddit: Callable[..., ApiServer],
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    allow_sleep(monkeypatch, sleeps)

    def last_allowed_request(request: ApiRequest) -> Reply:
        reply = _all_search(request)
        if "after" not in request.query:  # this window's budget is spent: reset in 30 s
            budget = {"x-ratelimit-remaining": "0", "x-ratelimit-used": "1000"}
            reply.headers.update(budget, **{"x-ratelimit-reset": "30"})
        else:  # a fresh window: no need to wait
            budget = {"x-ratelimit-remaining": "1000", "x-ratelimit-used": "0"}
            reply.headers.update(budget, **{"x-ratelimit-reset": "600"})
        return reply

    reddit(all=last_allowed_request)
    collected = collect(tmp_path, [SOURCE])
    assert collected.outcomes[0].status == "ok"
    [wait] = sleeps  # prawcore's own wait before page 2, and none after the fresh window
    assert 29 < wait <= 30


def test_server_error_fails_the_source_and_others_still_run(
    tmp_path: Path,
    reddit: Callable[..., ApiServer],
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    allow_sleep(monkeypatch, sleeps)  # prawcore's two retries back off (0-2 s, then 2-4 s)

    def hacker_news(request: ApiRequest) -> Reply:
        page = request.query.get("page", "0")
        return Reply(body=fixture_json("hackernews", f"page-{page}.json"))

    server = reddit(all=lambda request: Reply(500, "<html><h1>500 Internal Server Error</h1>"))
    server.routes["/hn/api/v1/search_by_date"] = hacker_news
    collected = collect(
        tmp_path,
        [SOURCE, {"name": "hn", "type": "hackernews", "api_url": f"{server.url}/hn/api/v1"}],
    )
    reddit_outcome, hn_outcome = collected.outcomes
    assert reddit_outcome.status == "failed"
    assert reddit_outcome.reason == f"GET {server.url}{ALL_SEARCH}: HTTP 500"
    assert len([r for r in server.requests if r.path == ALL_SEARCH]) == 3  # a try and 2 retries
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 2 <= sleeps[1] <= 4
    assert (hn_outcome.status, hn_outcome.new) == ("ok", 3)


@pytest.mark.parametrize(
    ("broken", "method", "path"),
    [("all", "GET", ALL_SEARCH), ("token", "POST", TOKEN)],
)
def test_malformed_json_is_a_clear_failure(
    tmp_path: Path, reddit: Callable[..., ApiServer], broken: str, method: str, path: str
) -> None:
    server = reddit(**{broken: lambda request: Reply(200, '{"kind": "Listing", "data": {')})
    collected = collect(tmp_path, [SOURCE])
    outcome = collected.outcomes[0]
    assert outcome.status == "failed"
    assert outcome.reason == f"{method} {server.url}{path}: the response is not valid JSON"


def test_a_slow_server_times_out_with_the_configured_timeout(
    tmp_path: Path,
    reddit: Callable[..., ApiServer],
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    allow_sleep(monkeypatch, sleeps)  # prawcore retries a timeout twice
    release = threading.Event()

    def stalls(request: ApiRequest) -> Reply:
        release.wait(5)
        return _all_search(request)

    server = reddit(all=stalls)
    started = time.monotonic()
    collected = collect(tmp_path, [SOURCE], timeout=0.3)
    release.set()
    # Let the stalled handlers answer the sockets PRAW gave up on while output is captured.
    threading.Event().wait(0.5)
    outcome = collected.outcomes[0]
    assert outcome.status == "failed"
    assert outcome.reason.startswith(f"GET {server.url}{ALL_SEARCH}: ReadTimeout")
    assert time.monotonic() - started < 4  # three tries of 0.3 s, not prawcore's 16 s each


def test_wrong_credentials_say_which_variables_to_check(
    tmp_path: Path, reddit: Callable[..., ApiServer]
) -> None:
    server = reddit(token=lambda request: Reply(401, {"message": "Unauthorized", "error": 401}))
    outcome = collect(tmp_path, [SOURCE]).outcomes[0]
    assert outcome.status == "failed"
    assert outcome.reason == (
        f"POST {server.url}{TOKEN}: HTTP 401 (are praw_client_id and praw_client_secret right?)"
    )


def test_missing_credentials_skip_the_source(tmp_path: Path) -> None:
    collected = collect(tmp_path, [SOURCE])
    [outcome] = collected.outcomes
    assert outcome.status == "skipped"
    assert "praw_client_id" in outcome.reason and "praw_client_secret" in outcome.reason
    assert collected.rows("SELECT count(*) FROM mentions") == [(0,)]


def test_credentials_from_a_praw_ini_section(
    tmp_path: Path, reddit: Callable[..., ApiServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = reddit()
    monkeypatch.delenv("praw_client_id")
    monkeypatch.delenv("praw_client_secret")
    (tmp_path / "praw.ini").write_text(
        "[monitor]\nclient_id=PLACEHOLDER-INI-ID\nclient_secret=PLACEHOLDER-INI-SECRET\n",
        encoding="utf-8",
    )
    collected = collect(tmp_path, [{**SOURCE, "praw_site": "monitor"}])
    assert (collected.outcomes[0].status, collected.outcomes[0].new) == ("ok", 5)
    basic = base64.b64encode(b"PLACEHOLDER-INI-ID:PLACEHOLDER-INI-SECRET").decode()
    assert server.requests[0].headers["Authorization"] == f"Basic {basic}"


def test_an_unknown_praw_site_skips_the_source(tmp_path: Path) -> None:
    [outcome] = collect(tmp_path, [{**SOURCE, "praw_site": "nowhere"}]).outcomes
    assert outcome.status == "skipped"
    assert outcome.reason.startswith("praw.ini has no section [nowhere]")
