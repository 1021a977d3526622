"""Hacker News through the Algolia API, against a local server answering with its real JSON."""

from __future__ import annotations

from pathlib import Path

from tests.api_server import ApiRequest, Reply, api_server, fixture_json
from tests.conftest import collect

PATH = "/api/v1/search_by_date"


def _pages(request: ApiRequest) -> Reply:
    return Reply(body=fixture_json("hackernews", f"page-{request.query.get('page', '0')}.json"))


def _source(url: str) -> dict[str, object]:
    return {"name": "hn", "type": "hackernews", "api_url": f"{url}/api/v1"}


def test_pages_through_hits_and_keeps_what_names_the_business(tmp_path: Path) -> None:
    with api_server({PATH: _pages}) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [outcome] = collected.outcomes
    assert (outcome.status, outcome.new) == ("ok", 3)
    assert [r.query["page"] for r in server.requests] == ["0", "1"]
    first = server.requests[0].query
    assert first["tags"] == "(story,comment)"
    assert first["query"] == '"Brightwater Cycles" OR "Brightwater Bikes" OR @brightwatercycles'
    assert "numericFilters" not in first  # nothing stored yet: no lower bound
    rows = collected.rows(
        "SELECT external_id, kind, url, author, title, text FROM mentions ORDER BY external_id"
    )
    assert [r[0] for r in rows] == [
        "hackernews:42900000",
        "hackernews:43099000",
        "hackernews:43100107",
    ]
    link_story, ask_story, comment = rows
    assert (
        link_story[1:2] == ("post",)
        and link_story[5] == "Brightwater Cycles opens a second workshop in Headingley"
    )
    # HTML is converted to text and the script's content does not survive.
    assert ask_story[5] == (
        "Brightwater Cycles double-charged my card for an online order and their support inbox "
        "has been silent for a week. Has anyone had a refund out of them?"
    )
    assert comment[1:4] == ("comment", "https://news.ycombinator.com/item?id=43100107", "tomfixes")
    assert "didn't charge me" in comment[5]
    # The deleted comment and the "Brightwaters" look-alike are counted, not stored.
    assert outcome.detail["monitor/deleted_or_empty"] == 1
    assert outcome.detail["monitor/not_about_business"] == 1


def test_rerun_asks_only_for_newer_hits(tmp_path: Path) -> None:
    with api_server({PATH: _pages}) as server:
        collect(tmp_path, [_source(server.url)])
        second = collect(tmp_path, [_source(server.url)])
    newest = max(h["created_at_i"] for h in fixture_json("hackernews", "page-0.json")["hits"])
    assert server.requests[-1].query["numericFilters"] == f"created_at_i>{newest}"
    assert second.outcomes[0].new == 0
    assert second.rows("SELECT count(*) FROM mentions") == [(3,)]


def test_rate_limited_then_served(tmp_path: Path) -> None:
    calls = {"n": 0}

    def limited(request: ApiRequest) -> Reply:
        calls["n"] += 1
        if calls["n"] == 1:
            return Reply(429, {"message": "Too many requests"}, {"Retry-After": "1"})
        return _pages(request)

    with api_server({PATH: limited}) as server:
        collected = collect(tmp_path, [_source(server.url)])
    assert collected.outcomes[0].status == "ok"
    assert server.requests[1].at - server.requests[0].at >= 1.0


def test_platform_down_fails_its_source_only(tmp_path: Path) -> None:
    with api_server({PATH: lambda r: Reply(500, "<html>oops</html>")}) as server:
        collected = collect(
            tmp_path,
            [
                _source(server.url),
                {**_source(server.url), "name": "hn-again", "api_url": f"{server.url}/other"},
            ],
        )
    assert [o.status for o in collected.outcomes] == ["failed", "failed"]
    assert "HTTP 500" in collected.outcomes[0].reason
    assert len([r for r in server.requests if r.path == PATH]) == 3  # the first try and 2 retries
    assert "HTTP 404" in collected.outcomes[1].reason  # not retried: a 404 will not get better


def test_malformed_json_is_a_clear_failure(tmp_path: Path) -> None:
    with api_server({PATH: lambda r: Reply(200, '{"hits": [')}) as server:
        collected = collect(tmp_path, [_source(server.url)])
    outcome = collected.outcomes[0]
    assert outcome.status == "failed"
    assert outcome.reason.endswith("the response is not valid JSON")
    assert server.url in outcome.reason


def test_wait_is_read_from_every_rate_limit_header_style() -> None:
    from datetime import UTC, datetime

    from monitor.clients.http import wait_seconds

    now = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    assert wait_seconds({"Retry-After": "7"}, now) == 7
    assert wait_seconds({"Retry-After": "Mon, 23 Nov 2026 10:00:30 GMT"}, now) == 30
    assert wait_seconds({"X-RateLimit-Reset": "2026-11-23T10:05:00.000Z"}, now) == 300  # Mastodon
    assert wait_seconds({"x-ratelimit-reset": "12"}, now) == 12  # Reddit: seconds to wait
    assert wait_seconds({}, now) is None
