"""`monitor doctor`: checks what a run needs — config, database, credentials, each source's
reachability — and says what to fix, before cron finds out on Monday."""

from __future__ import annotations

import configparser
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import func, select

from monitor.config import Config, SpiderSource
from monitor.store import Mention, Store
from monitor.touchpoints import load_taxonomy


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _praw_site_has_credentials(site: str) -> bool:
    parser = configparser.ConfigParser()
    parser.read([Path.home() / ".config" / "praw.ini", Path("praw.ini")])
    return parser.has_option(site, "client_id") and parser.has_option(site, "client_secret")


def _probe_url(source: object) -> str | None:
    if isinstance(source, SpiderSource):
        return source.start_urls[0]
    for attribute in ("api_url", "service"):
        if hasattr(source, attribute):
            return str(getattr(source, attribute))
    instances = getattr(source, "instances", None)
    if instances:
        return f"{instances[0].rstrip('/')}/api/v1/instance"
    return None


def run_checks(config: Config, reach: bool = True, timeout: float = 10.0) -> Iterator[Check]:
    yield Check("config", True, f"{config.path}: {len(config.businesses)} business(es)")
    try:
        taxonomy = load_taxonomy(config)
        yield Check("taxonomy", True, f"{len(taxonomy.touchpoints)} touchpoints")
    except Exception as exc:  # a ConfigError names the file and key
        yield Check("taxonomy", False, str(exc), "fix the taxonomy file named above")
    try:
        store = Store.open(config.database)
        with store.engine.connect() as connection:
            count = connection.scalar(select(func.count()).select_from(Mention))
        store.close()
        yield Check(
            "database", True, f"{_safe_url(config.database)}: schema up to date, {count} mentions"
        )
    except Exception as exc:  # the driver's own exception types vary
        yield Check(
            "database",
            False,
            f"{_safe_url(config.database)}: {exc}",
            "check the URL, that the server runs and that the user may create tables",
        )
    for business in config.businesses:
        for source in business.sources:
            if not source.enabled:
                continue
            label = f"{business.key}/{source.name}"
            if source.type == "reddit":
                site = getattr(source, "praw_site", None)
                has = bool(
                    os.environ.get("praw_client_id") and os.environ.get("praw_client_secret")
                )
                has = has or bool(site and _praw_site_has_credentials(site))
                yield Check(
                    f"{label} credentials",
                    has,
                    "Reddit credentials found" if has else "no Reddit credentials",
                    ""
                    if has
                    else "set praw_client_id and praw_client_secret (a Reddit 'script' app), or praw_site naming a praw.ini section",
                )
            if source.type == "bluesky":
                has = bool(
                    os.environ.get("BLUESKY_HANDLE") and os.environ.get("BLUESKY_APP_PASSWORD")
                )
                yield Check(
                    f"{label} credentials",
                    True,
                    "app password set"
                    if has
                    else "no app password: public search only (often refused)",
                    ""
                    if has
                    else "set BLUESKY_HANDLE and BLUESKY_APP_PASSWORD for reliable search",
                )
            url = _probe_url(source)
            if reach and url:
                yield _reach(label, url, config.user_agent, timeout)
    if config.digest.recipients or os.environ.get("MONITOR_SMTP_TO"):
        has = bool(os.environ.get("MONITOR_SMTP_HOST"))
        yield Check(
            "e-mail",
            has,
            "SMTP host set" if has else "recipients configured but no SMTP host",
            ""
            if has
            else "set MONITOR_SMTP_HOST, MONITOR_SMTP_FROM (and MONITOR_SMTP_USER/PASSWORD)",
        )


def _reach(label: str, url: str, user_agent: str, timeout: float) -> Check:
    if url.startswith("file://"):
        path = Path(url.removeprefix("file://"))
        return Check(
            f"{label} reachable",
            path.exists(),
            url,
            "" if path.exists() else "the file does not exist",
        )
    try:
        response = requests.get(url, timeout=timeout, headers={"User-Agent": user_agent})
    except requests.RequestException as exc:
        return Check(
            f"{label} reachable",
            False,
            f"{url}: {type(exc).__name__}",
            "check the URL and this machine's network",
        )
    ok = response.status_code < 400
    fix = (
        ""
        if ok
        else "the site refuses or lacks the page: check the URL; 401/403 may mean credentials or a bot wall"
    )
    return Check(f"{label} reachable", ok, f"{url}: HTTP {response.status_code}", fix)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say so without echoing it
        return "(unparsable database URL)"
