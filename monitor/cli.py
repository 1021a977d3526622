"""The ``monitor`` command: only the commands and their options; the work lives in the modules.

Exit codes: 0 all good, 1 the run failed or some sources failed (a digest may still be written),
2 bad usage or configuration.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from monitor.config import Config, ConfigError, load_config
from monitor.digest import Period, newest_mention, write_digest
from monitor.store import Store
from monitor.touchpoints import Taxonomy, load_taxonomy

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("monitor")


class UsageProblem(click.ClickException):
    """A usage or configuration problem: a clean message on stderr and exit code 2."""

    exit_code = EXIT_USAGE


def configure_logging(verbose: int, quiet: bool) -> None:
    """Quiet by default (cron mails whatever is printed): warnings and errors only.

    The level sits on the handler, not just the root logger, because Scrapy resets logger levels
    when a crawl starts.
    """
    level = (
        logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if verbose < 2:
        # Scrapy's own INFO lines (middlewares enabled, stats dumps) are noise even with -v.
        handler.addFilter(_NotChattyLibrary(("scrapy", "twisted", "alembic")))
    logging.basicConfig(level=logging.DEBUG, handlers=[handler], force=True)


class _NotChattyLibrary(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(self.prefixes)


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --db, --verbose, --quiet: shared by every command that reads a config."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        envvar="MONITOR_CONFIG",
        help="The YAML config describing the business and its sources.",
    )
    @click.option(
        "--db",
        "database",
        envvar="MONITOR_DB",
        help="Database URL (overrides the config), e.g. postgresql+psycopg://localhost/monitor.",
    )
    @click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
    @click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        config_path: Path,
        database: str | None,
        verbose: int,
        quiet: bool,
        **kwargs: Any,
    ) -> Any:
        configure_logging(verbose, quiet)
        config = _load(config_path, database)
        return func(*args, config=config, **kwargs)

    return wrapper


def period_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--week, --period, --since/--until: which period a digest or an export covers."""

    @click.option("--week", help="ISO week to report on, e.g. 2026-W47 (default: last full week).")
    @click.option(
        "--period",
        "period_kind",
        type=click.Choice(["week", "month"]),
        default="week",
        show_default=True,
        help="With no dates: the last full week or month.",
    )
    @click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First day of the period.")
    @click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day of the period.")
    @functools.wraps(func)
    def wrapper(
        *args: Any, week: str | None, period_kind: str, since: Any, until: Any, **kwargs: Any
    ) -> Any:
        period = _period(week, since, until)
        if period is None:
            period = (
                Period.last_complete_month()
                if period_kind == "month"
                else Period.last_complete_week()
            )
        return func(*args, period=period, **kwargs)

    return wrapper


def _load(config_path: Path, database: str | None) -> Config:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None
    if database:
        config = config.model_copy(update={"database": database})
    return config


def _period(week: str | None, since: Any, until: Any) -> Period | None:
    if week and (since or until):
        raise UsageProblem("give either --week or --since/--until, not both")
    if week:
        try:
            return Period.parse_week(week)
        except ValueError as exc:
            raise UsageProblem(str(exc)) from None
    if since or until:
        if not (since and until):
            raise UsageProblem("--since and --until go together")
        if until < since:
            raise UsageProblem("--until is before --since")
        return Period.between(since.date(), until.date())
    return None


def _open(config: Config) -> tuple[Store, Taxonomy]:
    try:
        taxonomy = load_taxonomy(config)
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None
    try:
        store = Store.open(config.database)
    except Exception as exc:  # the driver's own exception types vary; the message says enough
        raise click.ClickException(f"cannot open the database {config.database!r}: {exc}") from None
    return store, taxonomy


def _crawl(config: Config, store: Store, taxonomy: Taxonomy, command: str) -> bool:
    """Crawl every source; True when none failed."""
    from monitor.clients import collect_platforms
    from monitor.crawl import crawl_sources  # imports Scrapy and Twisted: only when crawling

    run_id = store.start_run(command)
    outcomes = collect_platforms(config, store, taxonomy, run_id)
    outcomes += crawl_sources(config, store, taxonomy, run_id)
    failed = [o for o in outcomes if o.status == "failed"]
    new = sum(o.new for o in outcomes)
    known = sum(o.duplicates for o in outcomes)
    store.finish_run(
        run_id,
        "failed" if failed and len(failed) == len(outcomes) else "partial" if failed else "ok",
    )
    for outcome in failed:
        click.echo(f"source {outcome.business}/{outcome.source} failed: {outcome.reason}", err=True)
    log.info("crawl finished: %d new mentions, %d already stored", new, known)
    return not failed


def _send(config: Config, path: Path) -> None:
    from monitor.mail import MailProblem, SmtpSettings, digest_message, send

    try:
        settings = SmtpSettings.from_environment(config.digest.recipients)
        html = path.read_text(encoding="utf-8")
        text = path.with_suffix(".txt").read_text(encoding="utf-8")
        subject = text.splitlines()[0] if text else path.stem
        send(digest_message(subject, text, html, settings), settings, timeout=config.crawl.timeout)
    except MailProblem as exc:
        raise click.ClickException(str(exc)) from None
    log.info("digest sent to %s", ", ".join(settings.recipients))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="monitor")
def cli() -> None:
    """What the public internet says about a business, touchpoint by touchpoint.

    Crawl the configured review sites, job boards and feeds, score and map every mention to its
    moment of truth, and write a weekly HTML digest.
    """


@cli.command()
@common_options
def crawl(config: Config) -> None:
    """Collect new mentions from every configured source into the database.

    Example:

        monitor crawl --config config/mybusiness.yaml
    """
    store, taxonomy = _open(config)
    ok = _crawl(config, store, taxonomy, "crawl")
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@cli.command()
@common_options
@period_options
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead."
)
@click.option("--send", is_flag=True, help="Also e-mail it (SMTP settings from MONITOR_SMTP_*).")
def digest(config: Config, period: Period, output: Path | None, send: bool) -> None:
    """Write the HTML digest for a period (default: the last full ISO week) and print its path.

    A plain-text twin (.txt) and the archive's index.html are written beside it.

    Example:

        monitor digest --config config/mybusiness.yaml --week 2026-W47 --send
    """
    store, taxonomy = _open(config)
    path = write_digest(config, store, taxonomy, period, output)
    if send:
        _send(config, path)
    click.echo(str(path))


@cli.command()
@common_options
@period_options
@click.option(
    "--format", "format_", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout.")
def export(config: Config, period: Period, format_: str, output: Path | None) -> None:
    """Export the mentions behind a digest, one row per mention with its primary touchpoint.

    Example:

        monitor export --config config/mybusiness.yaml --week 2026-W47 --format csv --output w47.csv
    """
    from monitor.export import mention_rows, write_csv, write_json

    store, _ = _open(config)
    writer = write_csv if format_ == "csv" else write_json
    rows = mention_rows(store, config.business, period)
    if output is None:
        writer(rows, sys.stdout)
        return
    with output.open("w", encoding="utf-8", newline="") as out:
        count = writer(rows, out)
    log.info("%d mentions written to %s", count, output)


@cli.command()
@common_options
@period_options
def run(config: Config, period: Period) -> None:
    """Crawl every source, then write the digest: the weekly cron job.

    Exits 1 when a source failed (the digest is still written and names it).

    Example:

        monitor run --config config/mybusiness.yaml
    """
    store, taxonomy = _open(config)
    ok = _crawl(config, store, taxonomy, "run")
    click.echo(str(write_digest(config, store, taxonomy, period)))
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@cli.command()
@click.option(
    "--db", "database", envvar="MONITOR_DB", help="Database URL (default: var/monitor.db)."
)
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def demo(database: str | None, verbose: int, quiet: bool) -> None:
    """Run the whole job on the bundled demo business and print the digest's path.

    Serves the demo pages on 127.0.0.1, crawls them, stores the mentions and writes the digest
    of the newest week in the demo data.

    Example:

        monitor demo
    """
    from monitor.demo import DEMO_CONFIG, DEMO_SITE, serve_directory

    configure_logging(verbose, quiet)
    with serve_directory(DEMO_SITE) as base_url:
        os.environ["MONITOR_DEMO_SITE"] = base_url
        config = _load(DEMO_CONFIG, database)
        store, taxonomy = _open(config)
        ok = _crawl(config, store, taxonomy, "demo")
    newest = newest_mention(store, config.business)
    period = Period.week_containing(newest) if newest else Period.last_complete_week()
    click.echo(str(write_digest(config, store, taxonomy, period)))
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


def main() -> None:
    cli(prog_name="monitor")
