"""HTTP for the platform clients, in one place: timeouts, status checks, retries and backoff.

A 429 or 5xx is retried after the server's ``Retry-After`` (or its ``x-ratelimit-reset``), else
an exponential backoff with jitter; an error page is never returned as data, and a body that is
not JSON is an error with its URL, not a crash.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ApiError(Exception):
    """A platform request that failed for good; the message says which URL and why."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status, when the server answered."""
        self.body = body
        """The decoded JSON error body, when there was one (e.g. {"error": "ExpiredToken"})."""


class MissingCredentials(Exception):
    """A platform that needs credentials the environment does not have: the source is skipped."""


def wait_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """How long the server asks us to wait: ``Retry-After`` (seconds or a date) or a reset time."""
    value = headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    reset = (
        headers.get("x-ratelimit-reset")
        or headers.get("X-RateLimit-Reset")
        or headers.get("RateLimit-Reset")  # Bluesky: a Unix time
        or headers.get("ratelimit-reset")
    )
    if not reset:
        return None
    reset = reset.strip()
    if reset.replace(".", "", 1).isdigit():
        seconds = float(reset)
        # Some APIs send seconds to wait, others a Unix time: a Unix time is far in the future.
        return max(0.0, seconds - time.time()) if seconds > 1e9 else seconds
    try:  # Mastodon sends an ISO 8601 time, and no Retry-After
        when = datetime.fromisoformat(reset.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class JsonApi:
    """A small JSON-over-HTTP client shared by the platform modules."""

    def __init__(
        self,
        user_agent: str,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        retry_after_max: float = 300.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept"] = "application/json"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.retry_after_max = retry_after_max
        # Looked up at call time, so a test that replaces time.sleep catches every wait.
        self.sleep = sleep or (lambda seconds: time.sleep(seconds))
        self.requests_made = 0

    def get(self, url: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.request("GET", url, params=params, **kwargs)

    def post(self, url: str, body: Mapping[str, Any], **kwargs: Any) -> Any:
        return self.request("POST", url, json=body, **kwargs)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """The decoded JSON body of a successful response; ApiError otherwise."""
        for attempt in range(self.retries + 1):
            self.requests_made += 1
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                if attempt == self.retries:
                    raise ApiError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
                self._pause(attempt, None, url, type(exc).__name__)
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                asked = wait_seconds(response.headers)
                if asked is not None and asked > self.retry_after_max:
                    raise ApiError(
                        f"{method} {response.url}: HTTP {response.status_code}, asked to wait "
                        f"{asked:.0f} s (more than {self.retry_after_max:.0f} s)",
                        status=response.status_code,
                    )
                self._pause(attempt, asked, response.url, f"HTTP {response.status_code}")
                continue
            if response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    body = None
                raise ApiError(
                    f"{method} {response.url}: HTTP {response.status_code}",
                    status=response.status_code,
                    body=body,
                )
            try:
                return response.json()
            except (json.JSONDecodeError, ValueError):
                raise ApiError(f"{method} {response.url}: the response is not valid JSON") from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pause(self, attempt: int, asked: float | None, url: str, why: str) -> None:
        if asked is not None:
            delay = asked
        else:
            delay = self.backoff * 2**attempt * random.uniform(0.5, 1.0)
        log.info("%s from %s: retrying in %.1f s", why, url, delay)
        self.sleep(delay)
