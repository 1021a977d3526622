"""Configuration: the YAML file a user writes, validated on load into typed objects.

Everything downstream (collectors, pipeline, store, digest) reads these objects, never raw YAML.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


def read_yaml(text: str) -> Any:
    """YAML's safe subset, parsed by libyaml where PyYAML was built with it (several times faster
    than the pure-Python parser; the taxonomy and lexicon are read by every process)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


DEFAULT_TAXONOMY = Path(__file__).resolve().parent.parent / "config" / "touchpoints.yaml"
DEFAULT_DATABASE = "sqlite:///var/monitor.db"
DEFAULT_OUTPUT_DIR = "var/digests"
DEFAULT_USER_AGENT = "monitor/0.1 (reputation monitor; contact the site owner named in config)"

# ${NAME}, or ${NAME:-default} for a value used when NAME is not set.
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration problem, worded for the person who wrote the file."""


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    if parts.scheme == "file" and parts.path:
        return value
    raise ValueError("expected an absolute http://, https:// or file:// URL")


Url = Annotated[str, AfterValidator(_check_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SelectorSet(_Strict):
    """CSS (or XPath, when it starts with '/' or '(') selectors for one review on a page."""

    review: str = Field(description="the container of one review")
    text: str | None = None
    title: str | None = None
    rating: str | None = None
    author: str | None = None
    date: str | None = None
    id: str | None = None
    pros: str | None = None
    cons: str | None = None
    advice: str | None = None

    @model_validator(mode="after")
    def _has_some_text(self) -> SelectorSet:
        if not (self.text or self.pros or self.cons):
            raise ValueError("a selector set needs 'text' or 'pros'/'cons'")
        return self


class _SourceBase(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    enabled: bool = True


SPIDER_TYPES = ("structured_data", "selectors", "feed")
PLATFORM_TYPES = ("reddit", "mastodon", "bluesky", "hackernews")


class SpiderSource(_SourceBase):
    """Pages crawled by one of our Scrapy spiders."""

    type: Literal["structured_data", "selectors", "feed"]
    start_urls: Annotated[list[Url], Field(min_length=1)]
    profile: Literal["reviews", "job_board"] = "reviews"
    selectors: SelectorSet | None = None
    next_page: str | None = Field(default=None, description="selector of the next page's link")
    page_url: str | None = Field(
        default=None,
        description="URL of page N with {page} in it, for sites whose pages are numbered",
    )
    owner_reply: str | None = Field(
        default=None, description="selector of the business's reply, inside a review's element"
    )
    owner_reply_date: str | None = Field(
        default=None, description="selector of the reply's date, inside a review's element"
    )
    rating_scale: tuple[float, float] = (1.0, 5.0)
    max_pages: Annotated[int, Field(ge=1)] = 50

    @field_validator("page_url")
    @classmethod
    def _page_url_has_placeholder(cls, value: str | None) -> str | None:
        if value is not None:
            if "{page}" not in value:
                raise ValueError(
                    "expected a URL containing {page}, e.g. https://site/reviews?page={page}"
                )
            _check_url(value.replace("{page}", "1"))
        return value

    @model_validator(mode="after")
    def _selectors_when_needed(self) -> SpiderSource:
        if self.type == "selectors" and self.selectors is None:
            raise ValueError("a 'selectors' source needs a 'selectors' block")
        return self


class RedditSource(_SourceBase):
    """Reddit through PRAW. Credentials come from PRAW's own places: ``praw_client_id`` and
    ``praw_client_secret`` in the environment, or a ``praw.ini`` section (``praw_site``)."""

    type: Literal["reddit"]
    subreddits: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{2,21}$")]] = []
    search_all: bool = Field(default=True, description="search all of Reddit for the names")
    query: str | None = Field(default=None, description="default: the business's names, OR-ed")
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    praw_site: str | None = None


class MastodonSource(_SourceBase):
    """Public Mastodon timelines: hashtags, and full-text search where the instance allows it."""

    type: Literal["mastodon"]
    instances: Annotated[list[Url], Field(min_length=1)]
    hashtags: list[Annotated[str, Field(pattern=r"^[^\s#]+$")]] = []
    search: bool = Field(default=True, description="also use /api/v2/search for the names")
    max_pages: Annotated[int, Field(ge=1, le=100)] = 10


class BlueskySource(_SourceBase):
    """Bluesky's app.bsky.feed.searchPosts; an app password from the environment if needed."""

    type: Literal["bluesky"]
    service: Url = "https://public.api.bsky.app"
    auth_service: Url = "https://bsky.social"
    query: str | None = None
    max_pages: Annotated[int, Field(ge=1, le=100)] = 10


class HackerNewsSource(_SourceBase):
    """Hacker News stories and comments through the Algolia search API (no key needed)."""

    type: Literal["hackernews"]
    api_url: Url = "https://hn.algolia.com/api/v1"
    query: str | None = None
    tags: list[Literal["story", "comment"]] = ["story", "comment"]
    max_pages: Annotated[int, Field(ge=1, le=50)] = 10


Source = Annotated[
    SpiderSource | RedditSource | MastodonSource | BlueskySource | HackerNewsSource,
    Field(discriminator="type"),
]


class Business(_Strict):
    name: Annotated[str, Field(min_length=1)]
    slug: str | None = None
    aliases: list[str] = []
    exclude: list[str] = Field(
        default=[], description="phrases that look like a mention but are not"
    )
    website: Url | None = None
    competitor: bool = False
    sources: list[Source] = []

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the business name must not be blank")
        return value.strip()

    @property
    def key(self) -> str:
        """A stable identifier used in file names and in the database."""
        if self.slug:
            return self.slug
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def names(self) -> list[str]:
        return [self.name, *self.aliases]

    @model_validator(mode="after")
    def _unique_source_names(self) -> Business:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}")
            seen.add(source.name)
        return self


class CrawlSettings(_Strict):
    """How collection behaves: politeness, retries, limits."""

    obey_robots: bool = True
    autothrottle: bool = True
    concurrent_requests: Annotated[int, Field(ge=1, le=64)] = 8
    concurrent_per_domain: Annotated[int, Field(ge=1, le=16)] = 2
    download_delay: Annotated[float, Field(ge=0)] = 0.5
    http_cache: bool = False
    stop_at_known: bool = True
    """Stop paging once a page reaches reviews already stored (for newest-first listings)."""
    timeout: Annotated[float, Field(gt=0)] = 30.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    retry_backoff: Annotated[float, Field(ge=0)] = 1.0
    """Seconds before the first retry; doubled for each further one (unless Retry-After says)."""
    scoring_processes: Annotated[int, Field(ge=1, le=64)] | None = None
    """Processes of the scoring pass that follows collecting (default: one per CPU); a pass
    with fewer than two batches a process waiting uses fewer."""
    max_page_mb: Annotated[float, Field(gt=0)] = 8.0
    """A page larger than this is not downloaded (a trap or a mistake); it is counted instead."""


class DigestSettings(_Strict):
    history_periods: Annotated[int, Field(ge=2, le=52)] = 12
    """How many past periods the trend lines and the alerts' sense of "normal" look back on."""
    half_life_days: Annotated[float, Field(gt=0)] = 14.0
    """In the recency-weighted score a mention this many days old counts half as much."""
    alert_min_mentions: Annotated[int, Field(ge=1)] = 3
    """A touchpoint needs this many mentions in the period before it can raise an alert."""
    alert_deviations: Annotated[float, Field(gt=0)] = 2.0
    """How many standard deviations from its own history make a change unusual."""
    top_mentions: Annotated[int, Field(ge=1, le=20)] = 3
    reply_window_days: Annotated[int, Field(ge=1)] = 90
    """Unanswered negative reviews are listed back this far."""
    recipients: list[str] = []
    """Where `monitor digest --send` mails the digest (or MONITOR_SMTP_TO)."""


class PrivacySettings(_Strict):
    hash_authors: bool = False
    """Store author names as a salted hash (salt from MONITOR_AUTHOR_SALT): the same person is
    still recognisable across mentions, but no name is kept."""
    retention_days: Annotated[int, Field(ge=1)] | None = None
    """Delete mentions older than this many days at the end of each run."""


class TouchpointChanges(_Strict):
    """A business's own changes to the default taxonomy."""

    taxonomy: str | None = Field(default=None, description="path to a whole taxonomy file")
    add: list[dict[str, Any]] = []
    rename: dict[str, str] = {}
    remove: list[str] = []
    learned: bool = Field(
        default=True,
        description="use the taxonomy's learned weights (false: its phrases alone)",
    )


class Config(_Strict):
    businesses: Annotated[list[Business], Field(min_length=1)]
    database: str = DEFAULT_DATABASE
    output_dir: str = DEFAULT_OUTPUT_DIR
    user_agent: str = DEFAULT_USER_AGENT
    redis_url: str | None = None  # for `monitor enqueue`/`worker`; MONITOR_REDIS_URL overrides it
    crawl: CrawlSettings = CrawlSettings()
    digest: DigestSettings = DigestSettings()
    privacy: PrivacySettings = PrivacySettings()
    touchpoints: TouchpointChanges = TouchpointChanges()
    path: Path | None = Field(default=None, exclude=True)

    @property
    def business(self) -> Business:
        """The business the digest is about (the first one that is not a competitor)."""
        for business in self.businesses:
            if not business.competitor:
                return business
        return self.businesses[0]

    @property
    def scoring_processes(self) -> int:
        return self.crawl.scoring_processes or os.cpu_count() or 1

    def resolve(self, relative: str) -> Path:
        """A path from the config, taken relative to the config file's folder."""
        candidate = Path(relative)
        if candidate.is_absolute() or self.path is None:
            return candidate
        return (self.path.parent / candidate).resolve()


def _expand_environment(node: Any, where: str, file: Path) -> Any:
    """Replace ${NAME} with the environment variable NAME, so no secret or host lives in the file."""
    if isinstance(node, dict):
        return {
            k: _expand_environment(v, f"{where}.{k}" if where else str(k), file)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand_environment(v, f"{where}[{i}]", file) for i, v in enumerate(node)]
    if isinstance(node, str):

        def lookup(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name not in os.environ and default is not None:
                return default
            if name not in os.environ:
                raise ConfigError(
                    f"{file}: {where}: environment variable {name} is not set "
                    f"(the value {node!r} refers to it)"
                )
            return os.environ[name]

        return _ENV_REFERENCE.sub(lookup, node)
    return node


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    # A source's type picks its model; pydantic names that model in the location: left out.
    for part in (p for p in loc if p not in SPIDER_TYPES + PLATFORM_TYPES):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(error: Any, raw: Any) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _location(loc[:-1])
        return f"{parent}: unknown key {loc[-1]!r}"
    if kind == "missing":
        return f"{_location(loc)}: required key is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        context = error.get("ctx") or {}
        expected = context.get("expected_tags", "")
        tag = context.get("tag")
        if kind == "union_tag_not_found":
            return f"{_location(loc)}.type: required key is missing (expected one of: {expected})"
        return f"{_location(loc)}.type: {tag!r} is not valid: expected one of: {expected}"
    value = raw
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = error.get("input")
            break
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{_location(loc)}: {value!r} is not valid: {message}"


def parse_config(raw: Any, file: Path) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping of settings at the top level")
    expanded = _expand_environment(raw, "", file)
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        lines = [_describe(e, expanded) for e in exc.errors()]
        raise ConfigError(f"{file}: " + f"\n{file}: ".join(lines)) from None
    return config.model_copy(update={"path": file.resolve()})


def load_config(path: str | os.PathLike[str]) -> Config:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the config file ({exc})") from None
    try:
        raw = read_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse_config(raw, file)
