"""Mastodon hashtag timelines and search, against a local server answering with its real JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.demo import DEMO_SITE, serve_directory
from tests.api_server import ApiRequest, Reply, Route, api_server, fixture_json
from tests.conftest import collect

TAG_PATH = "/api/v1/timelines/tag/brightwatercycles"
SEARCH_PATH = "/api/v2/search"
# This stand-in pages at 6 statuses (Mastodon at up to 40), so the 9 in the fixture take two pages.
SERVER_PAGE = 6
TAG_STATUSES = fixture_json("mastodon", "tag-brightwatercycles.json")


def _window(statuses: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """What Mastodon returns for max_id / since_id / min_id: newest first, one page."""
    found = sorted(statuses, key=lambda s: int(s["id"]), reverse=True)
    if "max_id" in query:
        found = [s for s in found if int(s["id"]) < int(query["max_id"])]
    for lower in ("since_id", "min_id"):
        if lower in query:
            found = [s for s in found if int(s["id"]) > int(query[lower])]
    return found[:SERVER_PAGE]


def _timeline(*files: str) -> Route:
    statuses = [s for name in files for s in fixture_json("mastodon", name)]
    return lambda request: Reply(body=_window(statuses, request.query))


def _search(request: ApiRequest) -> Reply:
    # Mastodon ANDs a query's terms, so the client searches once per name; only the shop's
    # full name finds anything on this instance.
    found: list[dict[str, Any]] = []
    if request.query.get("q") == '"Brightwater Cycles"':
        found = fixture_json("mastodon", "search-brightwater-cycles.json")["statuses"]
    return Reply(body={"accounts": [], "statuses": _window(found, request.query), "hashtags": []})


def _source(instance: str, name: str = "fediverse", **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "mastodon",
        "instances": [instance],
        "hashtags": ["brightwatercycles"],
        "search": False,
        **options,
    }


def _ids(*statuses: dict[str, Any]) -> list[int]:
    return [int(s["id"]) for s in statuses]


def _stored(statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fixture statuses that become mentions, newest first (a boost stands for its post)."""
    wanted = []
    for status in statuses:
        original = status["reblog"] or status
        public = original["visibility"] in ("public", "unlisted")
        if public and original["content"] and original not in wanted:
            wanted.append(original)
    return sorted(wanted, key=lambda s: s["created_at"], reverse=True)


@pytest.fixture(autouse=True)
def _no_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("MASTODON_TOKEN", "MASTODON_TOKEN_127_0_0_1"):
        monkeypatch.delenv(variable, raising=False)


def test_pages_the_tag_timeline_and_keeps_public_posts(tmp_path: Path) -> None:
    with api_server({TAG_PATH: _timeline("tag-brightwatercycles.json")}) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [outcome] = collected.outcomes
    assert (outcome.status, outcome.new) == ("ok", 5)
    queries = [r.query for r in server.requests]
    assert [r.path for r in server.requests] == [TAG_PATH] * 3
    assert queries[0] == {"limit": "40"}
    # Each older page starts below the smallest id of the one before; the third comes back empty.
    assert queries[1]["max_id"] == str(min(_ids(*TAG_STATUSES[:SERVER_PAGE])))
    assert queries[2]["max_id"] == str(min(_ids(*TAG_STATUSES)))
    rows = collected.rows(
        "SELECT external_id, kind, url, author, published_at, text FROM mentions "
        "ORDER BY published_at DESC"
    )
    by_uri = {row[0].removeprefix("mastodon:"): row for row in rows}
    spoiler, wheel, boosted, reply, ride = (by_uri[s["uri"]] for s in _stored(TAG_STATUSES))
    # The content warning comes first; HTML entities and hashtag links become plain text.
    assert spoiler[5] == (
        "online order moan Third week waiting for an online order from Brightwater Cycles. The "
        'tracking page still says "processing" and emails get an auto-reply. '
        "#brightwatercycles #leeds"
    )
    assert spoiler[1:5] == (
        "post",
        "https://mastodon.example/@leedsrider/117655653777408007",
        "leedsrider@mastodon.example",
        "2026-11-21 17:40:03.000000",
    )
    # A status carrying <script> and <img onerror>: neither the markup nor the script survives.
    assert wheel[5] == (
        "Brightwater Cycles trued my back wheel in twenty minutes while I waited. "
        "#brightwatercycles"
    )
    assert wheel[3] == "mkl@fosstodon.example"
    # A boost is stored as the post it boosts (once, though the timeline lists both).
    assert boosted[3] == "tomfixes@mastodon.example"
    assert "Brightwater Bikes workshop" in boosted[5]
    assert reply[1] == "comment"  # in_reply_to_id is set; unlisted is public enough
    assert ride[5].startswith("Sunday social ride")  # names nothing, but carries the hashtag
    for counter, expected in {
        "not_public": 2,  # private and direct
        "deleted_or_empty": 1,  # a photo with no text
        "already_seen": 1,  # the boosted original, listed after its boost
    }.items():
        assert outcome.detail[f"monitor/{counter}"] == expected


def test_extra_keeps_the_platforms_numbers(tmp_path: Path) -> None:
    with api_server({TAG_PATH: _timeline("tag-brightwatercycles.json")}) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [(extra,)] = collected.rows(
        "SELECT extra FROM mentions WHERE external_id = ?", f"mastodon:{TAG_STATUSES[0]['uri']}"
    )
    assert json.loads(extra) == {
        "platform": "mastodon",
        "instance": server.url,
        "replies_count": 2,
        "reblogs_count": 1,
        "favourites_count": 5,
        "language": "en",
        "tags": ["brightwatercycles", "leeds"],
    }


def test_rerun_asks_only_for_newer_statuses(tmp_path: Path) -> None:
    newest = max(_ids(*TAG_STATUSES))
    routes = {TAG_PATH: _timeline("tag-brightwatercycles.json")}
    with api_server(routes) as server:
        collect(tmp_path, [_source(server.url)])
        first_run = len(server.requests)
        second = collect(tmp_path, [_source(server.url)])
        second_requests = server.requests[first_run:]
        # A status posted since: the third run stores it and only it.
        server.routes[TAG_PATH] = _timeline(
            "tag-brightwatercycles.json", "tag-brightwatercycles-newer.json"
        )
        third = collect(tmp_path, [_source(server.url)])
    assert [r.query for r in second_requests] == [{"limit": "40", "since_id": str(newest)}]
    assert (second.outcomes[0].status, second.outcomes[0].new) == ("empty", 0)
    assert third.outcomes[0].new == 1
    assert third.rows("SELECT count(*) FROM mentions") == [(6,)]
    [(cursor,)] = third.rows("SELECT cursor FROM sources WHERE name = 'fediverse'")
    newer = fixture_json("mastodon", "tag-brightwatercycles-newer.json")[0]["id"]
    assert json.loads(cursor) == {f"{server.url} tag:brightwatercycles": newer}


def test_search_without_a_token_keeps_the_hashtag_results(tmp_path: Path) -> None:
    routes = {
        TAG_PATH: _timeline("tag-brightwatercycles.json"),
        SEARCH_PATH: lambda r: Reply(401, {"error": "Search queries require authentication"}),
    }
    with api_server(routes) as server:
        collected = collect(tmp_path, [_source(server.url, search=True)])
    [outcome] = collected.outcomes
    assert (outcome.status, outcome.new) == ("ok", 5)
    assert outcome.detail["monitor/search_needs_token"] == 1
    # Refused once, the other names are not tried on that instance.
    assert len([r for r in server.requests if r.path == SEARCH_PATH]) == 1
    assert "Authorization" not in server.requests[0].headers


def test_search_with_a_token_sends_it_and_keeps_what_names_the_business(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTODON_TOKEN", "shared-token")
    monkeypatch.setenv("MASTODON_TOKEN_127_0_0_1", "token-for-this-instance")

    def search_with_token(request: ApiRequest) -> Reply:
        if request.headers.get("Authorization") != "Bearer token-for-this-instance":
            return Reply(401, {"error": "The access token is invalid"})
        return _search(request)

    routes = {TAG_PATH: _timeline("tag-brightwatercycles.json"), SEARCH_PATH: search_with_token}
    with api_server(routes) as server:
        collected = collect(tmp_path, [_source(server.url, search=True)])
    [outcome] = collected.outcomes
    searches = [r for r in server.requests if r.path == SEARCH_PATH]
    # The instance's own variable wins over MASTODON_TOKEN, on every request to it.
    assert {r.headers.get("Authorization") for r in server.requests} == {
        "Bearer token-for-this-instance"
    }
    found = fixture_json("mastodon", "search-brightwater-cycles.json")["statuses"]
    assert [(r.query["q"], r.query.get("max_id")) for r in searches] == [
        ('"Brightwater Cycles"', None),
        ('"Brightwater Cycles"', str(min(_ids(*found)))),
        ('"Brightwater Bikes"', None),
        ("@brightwatercycles", None),
    ]
    assert searches[0].query == {"q": '"Brightwater Cycles"', "type": "statuses", "limit": "40"}
    # Two of the four search results are new: one was on the tag timeline, one is about a lake.
    assert (outcome.status, outcome.new) == ("ok", 7)
    assert outcome.detail["monitor/not_about_business"] == 1
    assert outcome.detail["monitor/already_seen"] == 2
    texts = [t for (t,) in collected.rows("SELECT text FROM mentions")]
    assert any(t.startswith("Collected my commuter from Brightwater Bikes") for t in texts)
    assert not any("Brightwater Lake" in t for t in texts)


def test_a_refused_token_fails_the_source_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTODON_TOKEN", "revoked-token")
    routes = {
        TAG_PATH: _timeline("tag-brightwatercycles.json"),
        SEARCH_PATH: lambda r: Reply(401, {"error": "The access token was revoked"}),
    }
    with api_server(routes) as server:
        collected = collect(tmp_path, [_source(server.url, search=True)])
    [outcome] = collected.outcomes
    assert outcome.status == "failed"
    assert "HTTP 401" in outcome.reason and "MASTODON_TOKEN" in outcome.reason
    assert "revoked-token" not in outcome.reason + json.dumps(outcome.detail)


def test_rate_limited_then_served(tmp_path: Path) -> None:
    calls = {"n": 0}
    timeline = _timeline("tag-brightwatercycles.json")

    def limited(request: ApiRequest) -> Reply:
        calls["n"] += 1
        if calls["n"] == 1:
            return Reply(429, {"error": "Too many requests"}, {"Retry-After": "1"})
        return timeline(request)

    with api_server({TAG_PATH: limited}) as server:
        collected = collect(tmp_path, [_source(server.url)])
    assert (collected.outcomes[0].status, collected.outcomes[0].new) == ("ok", 5)
    assert server.requests[1].at - server.requests[0].at >= 1.0
    assert server.requests[1].query == server.requests[0].query


def test_instance_down_fails_its_source_only(tmp_path: Path) -> None:
    routes = {
        "/down" + TAG_PATH: lambda r: Reply(500, "<html>We're sorry, something went wrong</html>"),
        TAG_PATH: _timeline("tag-brightwatercycles.json"),
    }
    with api_server(routes) as server:
        collected = collect(
            tmp_path,
            [_source(f"{server.url}/down", "broken-instance"), _source(server.url, "healthy")],
        )
    broken, healthy = collected.outcomes
    assert broken.status == "failed"
    assert "HTTP 500" in broken.reason
    assert f"{server.url}/down{TAG_PATH}" in broken.reason
    assert len([r for r in server.requests if r.path == "/down" + TAG_PATH]) == 3  # 2 retries
    assert (healthy.status, healthy.new) == ("ok", 5)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('[{"id": "1176', "the response is not valid JSON"),
        ({"error": "Record not found"}, "the response is not a list of statuses"),
    ],
)
def test_malformed_answer_is_a_clear_failure(tmp_path: Path, body: Any, problem: str) -> None:
    with api_server({TAG_PATH: lambda r: Reply(200, body)}) as server:
        collected = collect(tmp_path, [_source(server.url)])
    [outcome] = collected.outcomes
    assert outcome.status == "failed"
    assert outcome.reason.endswith(problem)
    assert server.url in outcome.reason


def test_a_post_seen_on_two_instances_is_one_mention(tmp_path: Path) -> None:
    routes = {
        "/north" + TAG_PATH: _timeline("tag-brightwatercycles.json"),
        "/south" + TAG_PATH: _timeline("tag-brightwatercycles-other-instance.json"),
    }
    with api_server(routes) as server:
        source = _source(f"{server.url}/north")
        source["instances"].append(f"{server.url}/south")
        collected = collect(tmp_path, [source])
        second = collect(tmp_path, [source])
    [outcome] = collected.outcomes
    assert outcome.new == 6  # 5 from the first instance, and 1 of the 2 on the other
    assert outcome.detail["monitor/already_seen"] == 2
    [(author,)] = collected.rows(
        "SELECT author FROM mentions WHERE text LIKE 'Brightwater Cycles fitted full mudguards%'"
    )
    assert author == "kirkstall_commuter@toot.leeds.example"
    # Each instance keeps its own place: the rerun asks both for newer statuses only.
    rerun = [r.query.get("since_id") for r in server.requests[-2:]]
    assert rerun == [
        str(max(_ids(*TAG_STATUSES))),
        str(max(_ids(*fixture_json("mastodon", "tag-brightwatercycles-other-instance.json")))),
    ]
    assert second.outcomes[0].new == 0


def test_demo_site_is_read_once_though_it_ignores_paging(tmp_path: Path) -> None:
    # The demo's static server answers every page alike: paging must stop, not loop.
    with serve_directory(DEMO_SITE) as url:
        collected = collect(tmp_path, [_source(f"{url}/mastodon", search=True)])
    [outcome] = collected.outcomes
    assert (outcome.status, outcome.new) == ("ok", 9)
    # Tag timeline: the first page and one asking for older; search: the same per name.
    assert outcome.detail["requests"] == 2 + 3 * 2
