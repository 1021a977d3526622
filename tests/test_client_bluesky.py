"""Bluesky search, logged in or not, against a local server answering with Bluesky's real JSON.

The server stands in for both the public AppView (``service``) and the account's PDS
(``auth_service``); credentials are placeholders and the session cache is the test's own.
``time.sleep`` raises unless a test is about waiting, so nothing can silently wait.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

import lxml.html
import pytest

import monitor.clients
from monitor.clients.http import JsonApi
from monitor.demo import DEMO_SITE, serve_directory
from tests.api_server import ApiRequest, ApiServer, Reply, Route, api_server, fixture_json
from tests.conftest import collect

SEARCH = "/xrpc/app.bsky.feed.searchPosts"
CREATE = "/xrpc/com.atproto.server.createSession"
REFRESH = "/xrpc/com.atproto.server.refreshSession"
HANDLE = "brightwater-watch.bsky.social"
PASSWORD = "PLACEHOLDER-APP-PASSWORD"
SESSION = fixture_json("bluesky", "create-session.json")
REFRESHED = fixture_json("bluesky", "refresh-session.json")
PAGE_1 = fixture_json("bluesky", "search-brightwater-cycles-page-1.json")
NEWEST = "2026-11-21T19:42:10.512Z"  # the newest post's createdAt (it was indexed just after)
QUERIES = ['"Brightwater Cycles"', '"Brightwater Bikes"', "@brightwatercycles"]


def _search(request: ApiRequest) -> Reply:
    """Bluesky ANDs a query's words, so the client searches once per name; this stand-in ignores
    ``since`` (the client must stop at known posts by itself) and pages by ``cursor``."""
    query = request.query.get("q")
    if query == '"Brightwater Cycles"':
        page = 2 if request.query.get("cursor") == PAGE_1["cursor"] else 1
        return Reply(body=fixture_json("bluesky", f"search-brightwater-cycles-page-{page}.json"))
    if query == '"Brightwater Bikes"':
        return Reply(body=fixture_json("bluesky", "search-brightwater-bikes.json"))
    return Reply(body={"hitsTotal": 0, "posts": []})


def _source(url: str, **options: Any) -> dict[str, Any]:
    # The public AppView under /appview, the PDS at the root: requests show which one was used.
    return {
        "name": "bluesky",
        "type": "bluesky",
        "service": f"{url}/appview",
        "auth_service": url,
        **options,
    }


def _visitor_routes(**changes: Route) -> dict[str, Route]:
    return {"/appview" + SEARCH: _search, **changes}


def _searches(server: ApiServer, prefix: str = "") -> list[ApiRequest]:
    return [r for r in server.requests if r.path == prefix + SEARCH]


@pytest.fixture(autouse=True)
def _no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No app password from the developer's shell, and a session cache of the test's own."""
    monkeypatch.delenv("BLUESKY_HANDLE", raising=False)
    monkeypatch.delenv("BLUESKY_APP_PASSWORD", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _only_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach {address}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(autouse=True)
def _sleep_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    real_api = JsonApi

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"time.sleep({seconds}) in a test that should not wait")

    monkeypatch.setattr(time, "sleep", no_sleep)
    # JsonApi took time.sleep as a default argument when it was defined: hand it the patched one.
    monkeypatch.setattr(
        monitor.clients,
        "JsonApi",
        lambda *args, **kwargs: real_api(*args, **kwargs, sleep=lambda s: time.sleep(s)),
    )


def test_pages_by_cursor_and_keeps_what_names_the_business(tmp_path: Path) -> None:
    with api_server(_visitor_routes()) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [outcome] = collected.outcomes
    assert (outcome.status, outcome.new) == ("ok", 4)
    searches = _searches(server, "/appview")
    assert [(r.query["q"], r.query.get("cursor")) for r in searches] == [
        ('"Brightwater Cycles"', None),
        ('"Brightwater Cycles"', "100"),  # the first page's cursor; the second page has none
        ('"Brightwater Bikes"', None),
        ("@brightwatercycles", None),
    ]
    assert all(r.query["limit"] == "100" and r.query["sort"] == "latest" for r in searches)
    assert all("since" not in r.query for r in searches)  # nothing stored yet: no lower bound
    assert all("Authorization" not in r.headers for r in searches)
    rows = collected.rows(
        "SELECT kind, url, author, published_at, extra FROM mentions ORDER BY published_at DESC"
    )
    kind, url, author, published, extra = rows[0]
    assert (kind, author) == ("post", "priya-ottley.bsky.social")
    assert url == "https://bsky.app/profile/priya-ottley.bsky.social/post/3meqiwyfkihb5"
    assert published.startswith("2026-11-21 19:42:10.512")
    assert json.loads(extra) == {
        "platform": "bluesky",
        "likeCount": 14,
        "repostCount": 2,
        "replyCount": 3,
        "langs": ["en"],
    }
    assert rows[1][:1] == ("comment",)  # a reply
    # A createdAt without a time zone: the time Bluesky indexed the post is used.
    assert rows[-1][2:4] == ("rowan-ebikes.bsky.social", "2026-11-12 08:15:01.377000")
    assert outcome.detail["monitor/already_seen"] == 1  # found again by "Brightwater Bikes"
    ids = collected.rows(
        "SELECT external_id FROM mentions WHERE author = 'priya-ottley.bsky.social'"
    )
    assert ids == [(f"bluesky:{PAGE_1['posts'][0]['uri']}",)]


def test_deleted_empty_and_unrelated_posts_are_counted_not_stored(tmp_path: Path) -> None:
    with api_server(_visitor_routes()) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [outcome] = collected.outcomes
    assert outcome.detail["monitor/deleted_or_empty"] == 2  # an image-only post, a lost record
    assert outcome.detail["monitor/not_about_business"] == 1  # "Brightwater Lake" is excluded
    authors = {a for (a,) in collected.rows("SELECT author FROM mentions")}
    assert not authors & {"frostyminer.bsky.social", "tandemtales.bsky.social"}


def test_rerun_asks_since_the_newest_post_and_stores_nothing_new(tmp_path: Path) -> None:
    with api_server(_visitor_routes()) as server:
        collect(tmp_path, [_source(server.url)])
        first_run = len(server.requests)
        second = collect(tmp_path, [_source(server.url)])
    rerun = server.requests[first_run:]
    assert [r.query["q"] for r in rerun] == QUERIES  # one page each: it stops at known posts
    assert all(r.query["since"] == NEWEST and "cursor" not in r.query for r in rerun)
    assert (second.outcomes[0].status, second.outcomes[0].new) == ("empty", 0)
    assert second.rows("SELECT count(*) FROM mentions") == [(4,)]
    [(cursor,)] = second.rows("SELECT cursor FROM sources WHERE name = 'bluesky'")
    assert cursor == NEWEST


def _logged_in_search(accepted: set[str]) -> Route:
    def search(request: ApiRequest) -> Reply:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in accepted:
            return _search(request)
        if token:
            return Reply(400, {"error": "ExpiredToken", "message": "Token has expired"})
        return Reply(401, {"error": "AuthenticationRequired", "message": "Authentication Required"})

    return search


def _refresh(request: ApiRequest) -> Reply:
    if request.headers.get("Authorization") == f"Bearer {SESSION['refreshJwt']}":
        return Reply(body=REFRESHED)
    return Reply(400, {"error": "ExpiredToken", "message": "Token has expired"})


def test_logs_in_once_and_reuses_the_cached_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BLUESKY_HANDLE", HANDLE)
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)
    routes = {
        CREATE: lambda r: Reply(body=SESSION),
        SEARCH: _logged_in_search({SESSION["accessJwt"]}),
    }
    with api_server(routes) as server:
        first = collect(tmp_path / "first", [_source(server.url)])
        second = collect(tmp_path / "second", [_source(server.url)])
    assert [(o.status, o.new) for o in first.outcomes + second.outcomes] == [("ok", 4), ("ok", 4)]
    logins = [r for r in server.requests if r.path == CREATE]
    assert len(logins) == 1  # the second run used the cached session
    assert logins[0].method == "POST"
    assert logins[0].json() == {"identifier": HANDLE, "password": PASSWORD}
    searches = _searches(server)
    assert searches and not _searches(server, "/appview")  # logged in: through the PDS
    assert {r.headers["Authorization"] for r in searches} == {f"Bearer {SESSION['accessJwt']}"}
    cache = tmp_path / "cache" / "monitor" / f"bluesky-{HANDLE}.json"
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    kept = json.loads(cache.read_text(encoding="utf-8"))
    assert kept["accessJwt"] == SESSION["accessJwt"] and PASSWORD not in json.dumps(kept)
    shown = caplog.text + json.dumps([o.detail for o in first.outcomes + second.outcomes])
    for secret in (PASSWORD, SESSION["accessJwt"], SESSION["refreshJwt"]):
        assert secret not in shown


def test_an_expired_session_is_refreshed_before_logging_in_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUESKY_HANDLE", HANDLE)
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    accepted = {SESSION["accessJwt"]}
    routes = {
        CREATE: lambda r: Reply(body=SESSION),
        REFRESH: _refresh,
        SEARCH: _logged_in_search(accepted),
    }
    cache = tmp_path / "cache" / "monitor" / f"bluesky-{HANDLE}.json"
    with api_server(routes) as server:
        collect(tmp_path / "first", [_source(server.url)])
        accepted.clear()
        accepted.add(REFRESHED["accessJwt"])  # the first access token has expired
        refreshed = collect(tmp_path / "second", [_source(server.url)])
        calls = [r.path for r in server.requests if r.path in (CREATE, REFRESH)]
        assert calls == [CREATE, REFRESH]
        [refresh] = [r for r in server.requests if r.path == REFRESH]
        assert refresh.headers["Authorization"] == f"Bearer {SESSION['refreshJwt']}"
        assert json.loads(cache.read_text())["accessJwt"] == REFRESHED["accessJwt"]
        # Both tokens refused now (the refresh token was rotated, the session revoked):
        accepted.clear()
        accepted.add(SESSION["accessJwt"])
        again = collect(tmp_path / "third", [_source(server.url)])
        calls = [r.path for r in server.requests if r.path in (CREATE, REFRESH)]
    assert (refreshed.outcomes[0].status, refreshed.outcomes[0].new) == ("ok", 4)
    assert calls == [CREATE, REFRESH, REFRESH, CREATE]  # a login only when refreshing failed
    assert (again.outcomes[0].status, again.outcomes[0].new) == ("ok", 4)


def test_a_refused_login_fails_the_source_without_showing_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUESKY_HANDLE", HANDLE)
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    refused = Reply(401, {"error": "AuthenticationRequired", "message": "Invalid identifier"})
    with api_server({CREATE: lambda r: refused}) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [outcome] = collected.outcomes
    assert outcome.status == "failed"
    assert "HTTP 401" in outcome.reason and "BLUESKY_APP_PASSWORD" in outcome.reason
    assert PASSWORD not in outcome.reason
    assert not _searches(server)


def test_refused_search_without_credentials_skips_the_source(tmp_path: Path) -> None:
    forbidden = Reply(403, {"error": "Forbidden", "message": "search requires authentication"})
    with api_server(_visitor_routes(**{"/appview" + SEARCH: lambda r: forbidden})) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [outcome] = collected.outcomes
    assert outcome.status == "skipped"
    assert "HTTP 403" in outcome.reason
    assert "BLUESKY_HANDLE" in outcome.reason and "BLUESKY_APP_PASSWORD" in outcome.reason
    assert len(server.requests) == 1  # the other names would be refused alike


def test_rate_limited_then_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", threading.Event().wait)  # this test is about waiting
    calls = {"n": 0}

    def limited(request: ApiRequest) -> Reply:
        calls["n"] += 1
        if calls["n"] == 1:
            return Reply(429, {"error": "RateLimitExceeded"}, {"Retry-After": "1"})
        return _search(request)

    with api_server(_visitor_routes(**{"/appview" + SEARCH: limited})) as server:
        collected = collect(tmp_path, [_source(server.url)])
    assert (collected.outcomes[0].status, collected.outcomes[0].new) == ("ok", 4)
    assert server.requests[1].at - server.requests[0].at >= 1.0
    assert server.requests[1].query == server.requests[0].query


def test_platform_down_fails_the_source_with_its_url(tmp_path: Path) -> None:
    down = Reply(500, "<html>Internal Server Error</html>")
    with api_server(_visitor_routes(**{"/appview" + SEARCH: lambda r: down})) as server:
        collected = collect(tmp_path, [_source(server.url)], retries=0)
    [outcome] = collected.outcomes
    assert outcome.status == "failed"
    assert "HTTP 500" in outcome.reason
    assert f"{server.url}/appview{SEARCH}" in outcome.reason


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"cursor": "100", "posts": [{"uri": ', "the response is not valid JSON"),
        ({"error": "InvalidRequest"}, "the response has no 'posts' list"),
    ],
)
def test_malformed_answer_is_a_clear_failure(tmp_path: Path, body: Any, problem: str) -> None:
    with api_server(_visitor_routes(**{"/appview" + SEARCH: lambda r: Reply(200, body)})) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [outcome] = collected.outcomes
    assert outcome.status == "failed"
    assert outcome.reason.endswith(problem)
    assert server.url in outcome.reason


def test_markup_in_a_post_is_stored_as_the_text_it_is(tmp_path: Path) -> None:
    from monitor.config import parse_config
    from monitor.digest import Period, write_digest
    from monitor.store import Store
    from monitor.touchpoints import load_taxonomy

    with api_server(_visitor_routes()) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [(text, sentences)] = collected.rows(
        "SELECT m.text, (SELECT count(*) FROM sentence_scores s WHERE s.mention_id = m.id) "
        "FROM mentions m WHERE m.author = 'mossgrove.bsky.social'"
    )
    # Bluesky text is plain text: what was typed is what is stored, and it was scored.
    assert text == PAGE_1["posts"][2]["record"]["text"]
    assert "<script>alert('where is my parcel')</script> & nothing" in text
    assert sentences > 0
    config = parse_config(
        {
            "database": f"sqlite:///{collected.db}",
            "output_dir": str(tmp_path / "digests"),
            "businesses": [{"name": "Brightwater Cycles", "sources": []}],
        },
        tmp_path / "business.yaml",
    )
    store = Store.open(config.database)
    try:
        page = write_digest(config, store, load_taxonomy(config), Period.parse_week("2026-W47"))
    finally:
        store.close()
    document = lxml.html.fromstring(page.read_text(encoding="utf-8"))
    assert not document.xpath("//script")  # shown as text, never run
    assert "<script>alert('where is my parcel')</script> & nothing" in document.text_content()


def test_demo_site_is_one_page_for_each_name(tmp_path: Path) -> None:
    with serve_directory(DEMO_SITE) as url:
        collected = collect(tmp_path, [_source(url, service=f"{url}/bluesky")])
    [outcome] = collected.outcomes
    # Six posts, one only linking to the shop; the static site answers every name alike.
    assert (outcome.status, outcome.new) == ("ok", 5)
    assert outcome.detail["monitor/not_about_business"] == 1
    assert outcome.detail["monitor/already_seen"] == 2 * 6
    assert outcome.detail["requests"] == len(QUERIES)
