"""Mastodon statuses from each configured instance: hashtag timelines, and status search.

Every listing is read newest first, ``limit=40`` a page, older pages by ``max_id`` (the smallest
id seen so far). An instance only holds the posts federated to it, so several can be listed;
a post seen on two instances, or boosted, is one mention (its ActivityPub ``uri``). Hashtag
timelines are public; status search often needs a token (``MASTODON_TOKEN_<HOST>`` or
``MASTODON_TOKEN``): without one a refused search is counted, not a failure. The cursor maps
each instance's listing to the newest status id seen, so a rerun asks only for newer statuses.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from monitor.clients import Context
from monitor.clients.http import ApiError
from monitor.config import Business, MastodonSource
from monitor.names import mention_pattern, names_business
from monitor.normalise import clean_text
from monitor.records import MentionRecord

log = logging.getLogger(__name__)

PAGE_SIZE = 40  # the most Mastodon returns per page of a timeline or a search
PUBLIC_VISIBILITIES = frozenset({"public", "unlisted"})
# Statuses a search refuses to unauthenticated callers: 401/403, or 422 "requires authentication".
NEEDS_TOKEN_STATUSES = frozenset({401, 403, 422})
_HTTP_STATUS = re.compile(r": HTTP (\d{3})\b")


@dataclass
class Listing:
    """One newest-first list of statuses on one instance: a hashtag timeline or a search."""

    instance: str
    label: str
    """``tag:<name>`` or ``search:<name>``; with the instance, the listing's key in the cursor."""
    url: str
    params: dict[str, str | int]
    tag: str | None = None
    """The hashtag of a tag timeline (every status in it carries the tag)."""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.instance} {self.label}"

    @property
    def is_search(self) -> bool:
        return self.tag is None


def token_variables(instance: str) -> tuple[str, str]:
    """The environment variables that may hold an access token for this instance, most specific first."""
    host = urlsplit(instance).hostname or ""
    return f"MASTODON_TOKEN_{re.sub(r'[^A-Za-z0-9]', '_', host).upper()}", "MASTODON_TOKEN"


def instance_token(instance: str) -> tuple[str, str] | None:
    """The variable name and access token for this instance, if the environment has one."""
    for name in token_variables(instance):
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    return None


def search_term(name: str) -> str:
    """One name as a Mastodon search term: a phrase when it has spaces.

    Mastodon ANDs the terms of a query and has no OR, so every name gets its own search.
    """
    name = name.strip().replace('"', " ")
    return f'"{name}"' if " " in name else name


def _status_id(status: dict[str, Any]) -> int | None:
    value = status.get("id")
    text = str(value) if isinstance(value, (str, int)) else ""
    return int(text) if text.isdigit() else None


def _http_status(error: ApiError) -> int | None:
    found = _HTTP_STATUS.search(str(error))
    return int(found.group(1)) if found else None


def _published(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _full_acct(account: dict[str, Any]) -> str | None:
    """``user@domain``: a local account's ``acct`` has no domain, so take it from its URL.

    The same person then reads the same whichever instance the status was seen on.
    """
    acct = account.get("acct")
    if not isinstance(acct, str) or not acct:
        return None
    if "@" in acct:
        return acct
    host = urlsplit(str(account.get("url") or "")).hostname
    return f"{acct}@{host}" if host else acct


class Client:
    def __init__(self, source: MastodonSource, business: Business, context: Context) -> None:
        self.source = source
        self.business = business
        self.context = context
        self.pattern = mention_pattern(business.names)
        self.hashtags = {tag.casefold() for tag in source.hashtags}
        self.since = self._load_cursor(context.cursor)
        self.newest: dict[str, int] = dict(self.since)
        self.seen_uris: set[str] = set()

    def next_cursor(self) -> str | None:
        if not self.newest:
            return None
        return json.dumps({k: str(v) for k, v in sorted(self.newest.items())})

    def _load_cursor(self, cursor: str | None) -> dict[str, int]:
        """``{"<instance> <listing>": "<newest status id>"}``; unreadable means start afresh."""
        if not cursor:
            return {}
        try:
            mapping = json.loads(cursor)
        except ValueError:
            mapping = None
        if not isinstance(mapping, dict):
            log.warning(
                "%s: unreadable cursor %r, reading from the newest", self.source.name, cursor
            )
            self.context.counts["cursor_unreadable"] += 1
            return {}
        return {
            str(key): int(value)
            for key, value in mapping.items()
            if isinstance(value, str) and value.isdigit()
        }

    def mentions(self) -> Iterator[MentionRecord]:
        for instance in dict.fromkeys(url.rstrip("/") for url in self.source.instances):
            token = instance_token(instance)
            headers = {"Authorization": f"Bearer {token[1]}"} if token else {}
            for tag in self.source.hashtags:
                listing = Listing(
                    instance=instance,
                    label=f"tag:{tag}",
                    url=f"{instance}/api/v1/timelines/tag/{quote(tag, safe='')}",
                    params={"limit": PAGE_SIZE},
                    tag=tag,
                    headers=headers,
                )
                try:
                    yield from self._records(listing)
                except ApiError as error:
                    if token is not None or _http_status(error) not in NEEDS_TOKEN_STATUSES:
                        raise
                    # An instance can close its public timelines to visitors (Mastodon 4.2+).
                    hint = " or ".join(token_variables(instance))
                    raise ApiError(
                        f"{error} (this instance may want a token: set {hint})"
                    ) from None
            if self.source.search:
                yield from self._search(instance, headers, token[0] if token else None)

    def _search(
        self, instance: str, headers: dict[str, str], token_variable: str | None
    ) -> Iterator[MentionRecord]:
        for name in dict.fromkeys(n.strip() for n in self.business.names if n.strip()):
            listing = Listing(
                instance=instance,
                label=f"search:{name}",
                url=f"{instance}/api/v2/search",
                params={"q": search_term(name), "type": "statuses", "limit": PAGE_SIZE},
                headers=headers,
            )
            try:
                yield from self._records(listing)
            except ApiError as error:
                if _http_status(error) not in NEEDS_TOKEN_STATUSES:
                    raise
                if token_variable is not None:
                    raise ApiError(f"{error} (the token in {token_variable} was refused)") from None
                per_instance, shared = token_variables(instance)
                log.info(
                    "%s/%s: %s refuses status search without a token (set %s or %s); "
                    "hashtag timelines only",
                    self.business.key,
                    self.source.name,
                    instance,
                    per_instance,
                    shared,
                )
                self.context.counts["search_needs_token"] += 1
                return  # the other names would be refused alike

    def _records(self, listing: Listing) -> Iterator[MentionRecord]:
        for status in self._statuses(listing):
            record = self._record(status, listing)
            if record is not None:
                yield record

    def _statuses(self, listing: Listing) -> Iterator[dict[str, Any]]:
        """The listing's statuses newer than the cursor, newest first, page after page.

        Paging stops at an empty page, at a status already seen by an earlier run, after
        ``max_pages``, or when a page brings nothing older than the last (a server that ignores
        ``max_id`` would otherwise be asked forever).
        """
        since = self.since.get(listing.key)
        oldest: int | None = None
        for _ in range(self.source.max_pages):
            params = dict(listing.params)
            if since is not None:
                # Timelines take since_id; search takes min_id (it has no since_id).
                params["min_id" if listing.is_search else "since_id"] = str(since)
            if oldest is not None:
                params["max_id"] = str(oldest)
            body = self.context.api.get(listing.url, params=params, headers=listing.headers)
            statuses = (
                body.get("statuses") if listing.is_search and isinstance(body, dict) else body
            )
            if not isinstance(statuses, list):
                expected = "a 'statuses' list" if listing.is_search else "a list of statuses"
                raise ApiError(f"GET {listing.url}: the response is not {expected}")
            page_oldest = oldest
            reached_known = False
            for status in statuses:
                status_id = _status_id(status) if isinstance(status, dict) else None
                if status_id is None:
                    self.context.counts["malformed"] += 1
                    continue
                if since is not None and status_id <= since:
                    reached_known = True
                    continue
                self.newest[listing.key] = max(self.newest.get(listing.key, 0), status_id)
                if oldest is not None and status_id >= oldest:
                    continue  # listed on an earlier page: this server ignored max_id
                page_oldest = status_id if page_oldest is None else min(page_oldest, status_id)
                yield status
            if reached_known or not statuses or page_oldest == oldest:
                return
            oldest = page_oldest

    def _record(self, wrapper: dict[str, Any], listing: Listing) -> MentionRecord | None:
        # A boost is a wrapper around someone else's status: the mention is the original.
        reblog = wrapper.get("reblog")
        status = reblog if isinstance(reblog, dict) else wrapper
        counts = self.context.counts
        uri = status.get("uri")
        if not isinstance(uri, str) or not uri:
            counts["malformed"] += 1
            return None
        if status.get("visibility") not in PUBLIC_VISIBILITIES:
            counts["not_public"] += 1
            return None
        if uri in self.seen_uris:
            counts["already_seen"] += 1  # on another listing or instance, or boosted
            return None
        spoiler = str(status.get("spoiler_text") or "").strip()
        content = str(status.get("content") or "")
        # Left as HTML for the pipeline's one conversion to text; the content warning is plain
        # text, so it is escaped to survive that conversion as written.
        raw = (f"<p>{html.escape(spoiler)}</p>" if spoiler else "") + content
        plain = clean_text(raw)
        if not plain:
            counts["deleted_or_empty"] += 1
            return None
        tags = [
            str(tag["name"])
            for tag in status.get("tags") or []
            if isinstance(tag, dict) and tag.get("name")
        ]
        # A tag timeline lists only statuses carrying its tag: those are kept whatever they say.
        folded = {t.casefold() for t in tags}
        carries_tag = not listing.is_search and (not tags or bool(self.hashtags & folded))
        if not carries_tag and not names_business(plain, self.pattern, self.business.exclude):
            counts["not_about_business"] += 1
            return None
        self.seen_uris.add(uri)
        account = status.get("account")
        return MentionRecord(
            business=self.business.key,
            source=self.source.name,
            text=raw,
            url=str(status.get("url") or uri),
            kind="comment" if status.get("in_reply_to_id") else "post",
            external_id=f"mastodon:{uri}",
            author=_full_acct(account) if isinstance(account, dict) else None,
            published_at=_published(status.get("created_at")),
            extra={
                "platform": "mastodon",
                "instance": listing.instance,
                "replies_count": status.get("replies_count"),
                "reblogs_count": status.get("reblogs_count"),
                "favourites_count": status.get("favourites_count"),
                "language": status.get("language"),
                "tags": tags,
            },
        )
