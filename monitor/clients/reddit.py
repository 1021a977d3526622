"""Reddit through PRAW: searches, new posts and new comments that name the business, as mentions.

PRAW pages through the listings and prawcore paces requests by Reddit's ``x-ratelimit-*``
headers; credentials come only from PRAW's own places (``praw_*`` environment variables or a
``praw.ini`` section). The cursor is the newest ``created_utc`` seen, so a rerun stops each
listing (newest first) at what an earlier run already read.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from configparser import NoSectionError
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import praw
import prawcore
import requests
from praw.exceptions import MissingRequiredAttributeException, PRAWException
from praw.models import Comment, Submission
from prawcore.exceptions import (
    BadJSON,
    PrawcoreException,
    Redirect,
    RequestException,
    ResponseException,
    TooManyRequests,
)

from monitor.clients import Context
from monitor.clients.http import ApiError, MissingCredentials, wait_seconds
from monitor.config import Business, RedditSource
from monitor.names import mention_pattern, names_business, search_query
from monitor.records import MentionRecord

log = logging.getLogger(__name__)

PUBLIC_URL = "https://www.reddit.com"
"""Stored links point at Reddit itself, whichever server PRAW was told to talk to."""

GONE = frozenset({"[removed]", "[deleted]"})

MISSING_CREDENTIALS = (
    "Reddit credentials are not set: set the environment variables praw_client_id and "
    "praw_client_secret (the id and secret of a Reddit app of type 'script', from "
    "https://www.reddit.com/prefs/apps), or put them in a praw.ini section and name it "
    "with the source's praw_site"
)


def _endpoint_settings() -> dict[str, str]:
    """PRAW's endpoint settings from ``praw_oauth_url``, ``praw_reddit_url``, ``praw_short_url``.

    PRAW reads these three only from praw.ini or code; reading them from the environment too,
    under PRAW's own names, lets tests and the demo point PRAW at a server on 127.0.0.1.
    """
    settings = {}
    for key in ("oauth_url", "reddit_url", "short_url"):
        value = os.environ.get(f"praw_{key}", "").strip()
        if value:
            settings[key] = value
    # prawcore joins API paths onto oauth_url (urljoin: a base with a path needs its final '/')
    # and appends "/api/v1/access_token" to reddit_url (so no final '/').
    if "oauth_url" in settings:
        settings["oauth_url"] = settings["oauth_url"].rstrip("/") + "/"
    if "reddit_url" in settings:
        settings["reddit_url"] = settings["reddit_url"].rstrip("/")
    return settings


class WaitingRequestor(prawcore.Requestor):
    """prawcore's requestor with the configured timeout on every call and a 429 waited out.

    prawcore paces requests by the ``x-ratelimit-*`` headers but raises on a 429 straight away;
    here a 429 is retried after its ``Retry-After`` (else ``x-ratelimit-reset``, else a doubling
    backoff), a few times, before prawcore sees it.
    """

    def __init__(
        self,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_wait: float,
        on_request: Callable[[str, str], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, **kwargs)
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.on_request = on_request

    def request(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        method, url = str(args[0]).upper(), str(args[1])
        for attempt in range(self.retries + 1):
            self.on_request(method, url)
            # prawcore passes its own 16 s default on API calls: the configured timeout wins.
            response = super().request(*args, timeout=self.timeout, **kwargs)
            if response.status_code != 429 or attempt == self.retries:
                return response
            asked = wait_seconds(response.headers)
            if asked is not None and asked > self.max_wait:
                return response  # prawcore raises TooManyRequests: the source fails, clearly
            delay = asked if asked is not None else self.backoff * 2**attempt
            log.info("HTTP 429 from %s: retrying in %.1f s", url, delay)
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns")


class Client:
    def __init__(self, source: RedditSource, business: Business, context: Context) -> None:
        self.source = source
        self.business = business
        self.context = context
        self.since = _parse_cursor(context.cursor)
        self.newest: float | None = self.since
        self.pattern = mention_pattern(business.names)
        self.query = source.query or search_query(business.names)
        self.seen: set[str] = set()
        self.last_request = ("GET", "")
        self.reddit = self._connect()

    def next_cursor(self) -> str | None:
        if self.newest is None:
            return None
        return str(int(self.newest)) if self.newest.is_integer() else str(self.newest)

    def mentions(self) -> Iterator[MentionRecord]:
        for listing in self._listings():
            for item in self._unseen_items(listing):
                record = self._record(item)
                if record is not None:
                    yield record

    def _connect(self) -> praw.Reddit:
        api = self.context.api
        try:
            reddit = praw.Reddit(
                self.source.praw_site,
                user_agent=self.context.user_agent,
                check_for_updates=False,
                requestor_class=WaitingRequestor,
                requestor_kwargs={
                    "timeout": api.timeout,
                    "retries": api.retries,
                    "backoff": api.backoff,
                    "max_wait": api.retry_after_max,
                    "on_request": self._count_request,
                },
                **_endpoint_settings(),
            )
        except MissingRequiredAttributeException:
            raise MissingCredentials(MISSING_CREDENTIALS) from None
        except NoSectionError:
            raise MissingCredentials(
                f"praw.ini has no section [{self.source.praw_site}] (the source's praw_site): "
                "add one with client_id and client_secret, or set the environment variables "
                "praw_client_id and praw_client_secret"
            ) from None
        # Application-only OAuth (client credentials), even when a username/password is set.
        reddit.read_only = True
        return reddit

    def _count_request(self, method: str, url: str) -> None:
        self.context.api.requests_made += 1
        self.last_request = (method, url)

    def _listings(self) -> Iterator[Iterator[Any]]:
        """Each listing to read, newest first; none makes a request until it is iterated."""
        limit = self.source.limit
        if self.source.search_all:
            yield self.reddit.subreddit("all").search(self.query, sort="new", limit=limit)
        for name in self.source.subreddits:
            subreddit = self.reddit.subreddit(name)
            yield subreddit.search(self.query, sort="new", limit=limit)
            yield subreddit.new(limit=limit)
            yield subreddit.comments(limit=limit)

    def _unseen_items(self, listing: Iterator[Any]) -> Iterator[Submission | Comment]:
        """A listing's items newer than the cursor, each fullname once per run."""
        while True:
            try:
                item = next(listing)
            except StopIteration:
                return
            except (PrawcoreException, PRAWException, ValueError, KeyError) as exc:
                raise ApiError(self._failure(exc)) from None
            # vars(), not attributes: a missing attribute makes PRAW fetch the item again.
            data = vars(item) if isinstance(item, (Submission, Comment)) else {}
            if not data.get("id"):
                self.context.counts["malformed"] += 1
                continue
            created = float(data.get("created_utc") or 0)
            if self.since is not None and created <= self.since:
                return  # newest first: the rest was read by an earlier run
            self.newest = max(self.newest or 0.0, created)
            if item.fullname in self.seen:
                self.context.counts["listed_twice"] += 1
                continue
            self.seen.add(item.fullname)
            yield item

    def _record(self, item: Submission | Comment) -> MentionRecord | None:
        data = vars(item)
        is_comment = isinstance(item, Comment)
        title = None if is_comment else str(data.get("title") or "")
        text = str(data.get("body" if is_comment else "selftext") or "")
        if text.strip() in GONE or data.get("removed_by_category"):
            self.context.counts["removed_or_deleted"] += 1
            return None
        if not text and not is_comment:
            text = title or ""  # a link post: its title is all it says
        permalink = data.get("permalink")
        if not text or not permalink:
            self.context.counts["malformed"] += 1
            return None
        if not names_business(f"{title or ''}\n{text}", self.pattern, self.business.exclude):
            # Reddit's search matches loosely and listings hold everything: keep what names it.
            self.context.counts["not_about_business"] += 1
            return None
        author = data.get("author")  # PRAW turns "[deleted]" into None
        extra: dict[str, Any] = {
            "platform": "reddit",
            "subreddit": str(data["subreddit"]) if data.get("subreddit") else None,
            "score": data.get("score"),
            "num_comments": data.get("num_comments"),
            "permalink": permalink,
        }
        if is_comment:
            extra["link_id"] = data.get("link_id")
        return MentionRecord(
            business=self.business.key,
            source=self.source.name,
            text=text,
            url=PUBLIC_URL + permalink,
            kind="comment" if is_comment else "post",
            external_id=f"reddit:{item.fullname}",
            title=title,
            author=getattr(author, "name", None) if author is not None else None,
            published_at=datetime.fromtimestamp(float(data["created_utc"]), tz=UTC)
            if data.get("created_utc")
            else None,
            extra=extra,
        )

    def _failure(self, exc: Exception) -> str:
        """What went wrong, naming the request (without its query string) and the status."""
        if isinstance(exc, ResponseException):
            response = exc.response
            where = f"{response.request.method} {_without_query(response.url)}"
            status = response.status_code
            if isinstance(exc, BadJSON):
                return f"{where}: the response is not valid JSON"
            if isinstance(exc, TooManyRequests):
                return f"{where}: HTTP 429, still rate limited after {self.context.api.retries} retries"
            if isinstance(exc, Redirect):
                return f"{where}: HTTP {status} to {exc.path} (does the subreddit exist?)"
            if status == 401:
                return f"{where}: HTTP 401 (are praw_client_id and praw_client_secret right?)"
            return f"{where}: HTTP {status}"
        if isinstance(exc, RequestException):
            method, url = (str(a) for a in exc.request_args[:2])
            original = exc.original_exception
            return f"{method.upper()} {_without_query(url)}: {type(original).__name__}: {original}"
        method, url = self.last_request
        where = f"{method} {_without_query(url)}"
        if isinstance(exc, requests.JSONDecodeError):
            return f"{where}: the response is not valid JSON"
        return f"{where}: unexpected answer ({type(exc).__name__}: {exc})"


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _parse_cursor(cursor: str | None) -> float | None:
    if not cursor:
        return None
    try:
        return float(cursor)
    except ValueError:
        log.warning("ignoring a Reddit cursor that is not a timestamp: %r", cursor)
        return None
