"""Bluesky posts through ``app.bsky.feed.searchPosts``, newest first, one search per business name.

Bluesky ANDs the words of a query and has no OR, so every name gets its own search; a post found
by two of them is one mention. Bluesky mostly refuses search to visitors: with ``BLUESKY_HANDLE``
and ``BLUESKY_APP_PASSWORD`` set, the client logs in with the app password and searches through
``auth_service`` (the account's PDS proxies app.bsky calls). The session is kept in the user's
cache directory and refreshed when it expires, so a cron run does not spend ``createSession``'s
limit (30 logins per 5 minutes). The cursor is the newest post time seen; a rerun asks
``since=`` it and stops at posts at or before it.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.clients import Context
from monitor.clients.http import ApiError, JsonApi, MissingCredentials
from monitor.config import BlueskySource, Business
from monitor.names import mention_pattern, names_business
from monitor.records import MentionRecord

log = logging.getLogger(__name__)

HANDLE_VARIABLE = "BLUESKY_HANDLE"
PASSWORD_VARIABLE = "BLUESKY_APP_PASSWORD"
PAGE_SIZE = 100  # the most searchPosts returns per page
SEARCH = "/xrpc/app.bsky.feed.searchPosts"
CREATE_SESSION = "/xrpc/com.atproto.server.createSession"
REFRESH_SESSION = "/xrpc/com.atproto.server.refreshSession"
POST_URL = "https://bsky.app/profile/{actor}/post/{rkey}"
# What a visitor's search gets where public search is closed.
REFUSED_TO_VISITORS = frozenset({401, 403})
# An expired access token is a 400 with {"error": "ExpiredToken"}; a revoked one is a 401.
# ApiError does not carry the body, so any 400 is taken for expiry: a bad request costs one
# refresh (never a login) before it fails.
TOKEN_REFUSED = frozenset({400, 401})
_HTTP_STATUS = re.compile(r": HTTP (\d{3})\b")
# A name made only of these is one search term; anything else (spaces, Lucene operators such as
# ':' or '(' ) is searched as a quoted phrase.
_PLAIN_TERM = re.compile(r"[\w@#][\w@#.'’-]*")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def _http_status(error: ApiError) -> int | None:
    found = _HTTP_STATUS.search(str(error))
    return int(found.group(1)) if found else None


def search_term(name: str) -> str:
    """One name as a Bluesky search term: a quoted phrase unless it is a single plain word."""
    name = " ".join(name.replace('"', " ").split())
    return name if _PLAIN_TERM.fullmatch(name) else f'"{name}"'


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from an AT Protocol timestamp; ``None`` if missing, naive or invalid."""
    if not isinstance(value, str) or not value:
        return None
    # Some records carry nanoseconds, more than datetime takes.
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def format_time(moment: datetime) -> str:
    """UTC, ``Z``-suffixed, milliseconds unless the time has finer detail (as Bluesky writes)."""
    moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def sort_time(post: dict[str, Any]) -> datetime | None:
    """The time search sorts and filters by: the earlier of ``createdAt`` and ``indexedAt``.

    Bluesky's ``sortAt`` is that, so a post claiming a future ``createdAt`` cannot jump the queue.
    """
    record = post.get("record")
    created = parse_time(record.get("createdAt")) if isinstance(record, dict) else None
    indexed = parse_time(post.get("indexedAt"))
    known = [t for t in (created, indexed) if t is not None]
    return min(known) if known else None


def credentials_from_environment() -> tuple[str, str] | None:
    """The handle and app password, when both variables are set."""
    handle = os.environ.get(HANDLE_VARIABLE, "").strip().removeprefix("@")
    password = os.environ.get(PASSWORD_VARIABLE, "").strip()
    if handle and password:
        return handle, password
    if handle or password:
        missing = PASSWORD_VARIABLE if handle else HANDLE_VARIABLE
        log.warning("bluesky: %s is not set, so the app password cannot be used", missing)
    return None


def session_cache_path(handle: str) -> Path:
    """``$XDG_CACHE_HOME/monitor/bluesky-<handle>.json`` (``~/.cache`` when unset or relative)."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", handle.lower())
    return root / "monitor" / f"bluesky-{safe}.json"


@dataclass
class Session:
    """A logged-in session: short-lived access token, longer-lived refresh token."""

    service: str
    """The service that issued the tokens; they are never sent anywhere else."""
    handle: str
    did: str
    access_jwt: str = field(repr=False)
    refresh_jwt: str = field(repr=False)

    @classmethod
    def from_answer(cls, service: str, handle: str, body: Any, url: str) -> Session:
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) and body[k] for k in ("accessJwt", "refreshJwt")
        ):
            raise ApiError(f"POST {url}: the response has no session tokens")
        return cls(
            service=service,
            handle=str(body.get("handle") or handle),
            did=str(body.get("did") or ""),
            access_jwt=body["accessJwt"],
            refresh_jwt=body["refreshJwt"],
        )


@dataclass
class SessionFile:
    """The session cached between runs, readable by its owner only."""

    path: Path

    def load(self, service: str) -> Session | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("bluesky: ignoring the unreadable session file %s (%s)", self.path, exc)
            return None
        if not isinstance(data, dict) or data.get("service") != service:
            return None  # issued by another service: its tokens must not be sent to this one
        try:
            return Session(
                service=service,
                handle=str(data["handle"]),
                did=str(data.get("did") or ""),
                access_jwt=str(data["accessJwt"]),
                refresh_jwt=str(data["refreshJwt"]),
            )
        except KeyError:
            return None

    def save(self, session: Session) -> None:
        data = {
            "service": session.service,
            "handle": session.handle,
            "did": session.did,
            "accessJwt": session.access_jwt,
            "refreshJwt": session.refresh_jwt,
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
            descriptor = os.open(temporary, flags, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                json.dump(data, stream)
            os.chmod(temporary, 0o600)  # in case a stale temporary file had wider permissions
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning(
                "bluesky: could not keep the session in %s (%s); the next run logs in again",
                self.path,
                exc.strerror or exc,
            )


class AppPasswordLogin:
    """Authenticated GETs for one account: a cached session, refreshed, and only then a login."""

    def __init__(self, api: JsonApi, service: str, handle: str, password: str) -> None:
        self.api = api
        self.service = service
        self.handle = handle
        self._password = password
        self.file = SessionFile(session_cache_path(handle))
        self.session: Session | None = None
        self._fresh = False
        self._renewed = False

    def get(self, url: str, params: dict[str, Any]) -> Any:
        if self.session is None:
            self.session = self.file.load(self.service)
            if self.session is None:
                self.session = self._create()
            else:
                log.info("bluesky: using the cached session of %s", self.handle)
        try:
            return self.api.get(url, params=params, headers=_bearer(self.session.access_jwt))
        except ApiError as error:
            if self._fresh or self._renewed or _http_status(error) not in TOKEN_REFUSED:
                raise
        self.session = self._renew(self.session)
        return self.api.get(url, params=params, headers=_bearer(self.session.access_jwt))

    def _renew(self, session: Session) -> Session:
        """Refresh an expired session; log in again only if the refresh token is refused too."""
        self._renewed = True
        url = self.service + REFRESH_SESSION
        try:
            body = self.api.request("POST", url, headers=_bearer(session.refresh_jwt))
        except ApiError as error:
            if _http_status(error) not in TOKEN_REFUSED:
                raise
            log.info("bluesky: the session of %s has ended; logging in again", self.handle)
            return self._create()
        renewed = Session.from_answer(self.service, self.handle, body, url)
        log.info("bluesky: refreshed the session of %s", self.handle)
        self.file.save(renewed)
        return renewed

    def _create(self) -> Session:
        url = self.service + CREATE_SESSION
        try:
            body = self.api.post(url, {"identifier": self.handle, "password": self._password})
        except ApiError as error:
            status = _http_status(error)
            if status == 401:
                raise ApiError(
                    f"{error}: Bluesky refused the login of {HANDLE_VARIABLE}={self.handle}; "
                    f"check {PASSWORD_VARIABLE} (an app password, not the account password)"
                ) from None
            if status == 429:
                raise ApiError(
                    f"{error}: too many logins (Bluesky allows 30 per 5 minutes); try later"
                ) from None
            raise
        session = Session.from_answer(self.service, self.handle, body, url)
        log.info("bluesky: logged in as %s", self.handle)
        self._fresh = True
        self.file.save(session)
        return session


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _actor(author: dict[str, Any]) -> str | None:
    """The author's handle, or their DID when the handle does not resolve."""
    handle = author.get("handle")
    if isinstance(handle, str) and handle and handle != "handle.invalid":
        return handle
    did = author.get("did")
    return did if isinstance(did, str) and did else None


class Client:
    def __init__(self, source: BlueskySource, business: Business, context: Context) -> None:
        self.source = source
        self.business = business
        self.context = context
        self.pattern = mention_pattern(business.names)
        self.since = self._load_cursor(context.cursor)
        self.newest: datetime | None = self.since
        self.seen_uris: set[str] = set()
        credentials = credentials_from_environment()
        self.login = (
            AppPasswordLogin(context.api, source.auth_service.rstrip("/"), *credentials)
            if credentials
            else None
        )

    def next_cursor(self) -> str | None:
        return format_time(self.newest) if self.newest is not None else None

    def _load_cursor(self, cursor: str | None) -> datetime | None:
        if not cursor:
            return None
        moment = parse_time(cursor)
        if moment is None:
            log.warning(
                "%s: unreadable cursor %r, reading from the newest", self.source.name, cursor
            )
            self.context.counts["cursor_unreadable"] += 1
        return moment

    def queries(self) -> list[str]:
        if self.source.query:
            return [self.source.query]
        names = (n for n in self.business.names if n.strip())
        return list(dict.fromkeys(search_term(n) for n in names))

    def mentions(self) -> Iterator[MentionRecord]:
        for query in self.queries():
            for post in self._posts(query):
                record = self._record(post)
                if record is not None:
                    yield record

    def _posts(self, query: str) -> Iterator[dict[str, Any]]:
        """The query's posts newer than the cursor, newest first, page after page.

        Paging stops at the last page (no cursor), at a post already seen by an earlier run, after
        ``max_pages``, or when the server hands back the cursor it was given.
        """
        cursor: str | None = None
        for _ in range(self.source.max_pages):
            params: dict[str, Any] = {"q": query, "limit": PAGE_SIZE, "sort": "latest"}
            if cursor:
                params["cursor"] = cursor
            if self.since is not None:
                params["since"] = format_time(self.since)
            url, body = self._search(params)
            posts = body.get("posts") if isinstance(body, dict) else None
            if not isinstance(posts, list):
                raise ApiError(f"GET {url}: the response has no 'posts' list")
            reached_known = False
            for post in posts:
                if not isinstance(post, dict) or not str(post.get("uri") or "").startswith("at://"):
                    self.context.counts["malformed"] += 1
                    continue
                moment = sort_time(post)
                if self.since is not None and moment is not None and moment <= self.since:
                    reached_known = True  # `since` is inclusive: the newest post comes back
                    continue
                if moment is not None and (self.newest is None or moment > self.newest):
                    self.newest = moment
                yield post
            following = body.get("cursor")
            if reached_known or not posts or not isinstance(following, str) or not following:
                return
            if following == cursor:
                return
            cursor = following

    def _search(self, params: dict[str, Any]) -> tuple[str, Any]:
        """One page of search: logged in when there are credentials, else as a visitor."""
        if self.login is not None:
            url = self.login.service + SEARCH
            return url, self.login.get(url, params)
        url = self.source.service.rstrip("/") + SEARCH
        try:
            return url, self.context.api.get(url, params=params)
        except ApiError as error:
            if _http_status(error) not in REFUSED_TO_VISITORS:
                raise
            raise MissingCredentials(
                f"{error}: Bluesky refuses search without logging in; set {HANDLE_VARIABLE} and "
                f"{PASSWORD_VARIABLE} (an app password from Settings → Privacy and security → "
                "App passwords)"
            ) from None

    def _record(self, post: dict[str, Any]) -> MentionRecord | None:
        counts = self.context.counts
        uri = str(post["uri"])
        if uri in self.seen_uris:
            counts["already_seen"] += 1  # found by the search for another name
            return None
        self.seen_uris.add(uri)
        record = post.get("record")
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(record, dict) or not isinstance(text, str) or not text.strip():
            counts["deleted_or_empty"] += 1
            return None
        if not names_business(text, self.pattern, self.business.exclude):
            # Search matches words anywhere (link cards, alt text, stems): keep real mentions.
            counts["not_about_business"] += 1
            return None
        author = post.get("author") if isinstance(post.get("author"), dict) else {}
        actor = _actor(author or {})
        rkey = uri.rstrip("/").rsplit("/", 1)[-1]
        published = parse_time(record.get("createdAt")) or parse_time(post.get("indexedAt"))
        return MentionRecord(
            business=self.business.key,
            source=self.source.name,
            # Bluesky text is plain text; the pipeline reads text as possibly HTML, so it is
            # escaped here and its '<script>' or '&amp;' come out of that conversion as written.
            text=html.escape(text, quote=False),
            url=POST_URL.format(actor=actor, rkey=rkey) if actor else uri,
            kind="comment" if record.get("reply") else "post",
            external_id=f"bluesky:{uri}",
            author=actor,
            published_at=published,
            extra={
                "platform": "bluesky",
                "likeCount": post.get("likeCount"),
                "repostCount": post.get("repostCount"),
                "replyCount": post.get("replyCount"),
                "langs": record.get("langs") if isinstance(record.get("langs"), list) else [],
            },
        )
