"""The ``monitor`` command: only the commands and their options; the work lives in the modules.

Exit codes: 0 all good; 1 some sources failed (the digest was still written); 2 bad usage or
configuration; 3 nothing could be collected (every source failed); 75 another run is using the
same database (EX_TEMPFAIL: cron may simply try again later).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from monitor.config import Config, ConfigError, load_config
from monitor.store import Store
from monitor.touchpoints import Taxonomy, load_taxonomy

if TYPE_CHECKING:  # the digest (Jinja2 and the rest) is imported only by the commands that write it
    from monitor.digest import Period

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOTHING, EXIT_BUSY = 0, 1, 2, 3, 75
log = logging.getLogger("monitor")


class UsageProblem(click.ClickException):
    """A usage or configuration problem: a clean message on stderr and exit code 2."""

    exit_code = EXIT_USAGE


# One line per event, key=value, for cron mail and log collectors alike.
LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def configure_logging(verbose: int, quiet: bool, log_file: Path | None = None) -> None:
    """Quiet by default (cron mails whatever is printed): warnings and errors only.

    The level sits on the handlers, not just the root logger, because Scrapy resets logger
    levels when a crawl starts. A log file gets INFO and up whatever the terminal shows.
    """
    level = (
        logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    )
    handlers: list[logging.Handler] = []
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(level)
    handlers.append(terminal)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setLevel(min(level, logging.INFO))
        handlers.append(to_file)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        if verbose < 2:
            # Scrapy's own INFO lines (middlewares enabled, stats dumps) are noise even with -v.
            handler.addFilter(_NotChattyLibrary(("scrapy", "twisted", "alembic", "filelock")))
    logging.basicConfig(level=logging.DEBUG, handlers=handlers, force=True)


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
    @click.option(
        "--log-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="MONITOR_LOG_FILE",
        help="Also log (INFO and up) to this file.",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        config_path: Path,
        database: str | None,
        verbose: int,
        quiet: bool,
        log_file: Path | None,
        **kwargs: Any,
    ) -> Any:
        configure_logging(verbose, quiet, log_file)
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
        from monitor.digest import Period

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
    from monitor.digest import Period

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
    # The taxonomy's weights are a few million objects that live as long as the command. Left to
    # Python's cyclic collector, they were walked at every full collection while a crawl made
    # garbage: a sixth of a worker's crawling time, measured.
    from monitor.scoring import freeze_long_lived

    freeze_long_lived()
    return store, taxonomy


def _collect(config: Config, store: Store, taxonomy: Taxonomy, command: str) -> int:
    """Collect every source under the run lock; returns the exit code the run deserves."""
    from monitor.lock import RunInProgress, run_lock
    from monitor.runs import collect

    try:
        with run_lock(store.engine), _progress(f"collecting from {_source_count(config)} sources"):
            result = collect(config, store, taxonomy, command)
    except RunInProgress as exc:
        click.echo(f"monitor: {exc}; not starting a second run", err=True)
        sys.exit(EXIT_BUSY)
    for outcome in result.failed:
        click.echo(f"source {outcome.business}/{outcome.source} failed: {outcome.reason}", err=True)
    for outcome in result.outcomes:
        if outcome.status == "skipped":
            click.echo(
                f"source {outcome.business}/{outcome.source} skipped: {outcome.reason}", err=True
            )
    log.info(
        "run %d %s: %d new mentions, %d already stored, %d scored",
        result.run_id,
        result.status,
        sum(o.new for o in result.outcomes),
        sum(o.duplicates for o in result.outcomes),
        result.scoring.scored,
    )
    if result.scoring.failed:
        click.echo(
            f"{result.scoring.failed} mention(s) could not be scored (see the log); "
            "the next run tries them again",
            err=True,
        )
    if _interactive():
        _show_outcomes(result.outcomes)
    if result.status == "failed":
        return EXIT_NOTHING
    return EXIT_FAILED if result.failed else EXIT_OK


def _source_count(config: Config) -> int:
    return sum(1 for b in config.businesses for s in b.sources if s.enabled)


def _interactive() -> bool:
    return sys.stderr.isatty() and logging.getLogger().handlers[0].level <= logging.WARNING


def _progress(message: str) -> Any:
    """A spinner on a terminal; nothing under cron, where only log lines belong."""
    import contextlib

    if not _interactive():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def _show_outcomes(outcomes: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("source", "status", "new", "known", "dropped", "reason")
    for o in outcomes:
        table.add_row(
            f"{o.business}/{o.source}",
            o.status,
            str(o.new),
            str(o.duplicates),
            str(o.dropped),
            o.reason,
        )
    Console(stderr=True).print(table)


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
    sys.exit(_collect(config, store, taxonomy, "crawl"))


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
    from monitor.digest import write_digest

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
    from monitor.digest import write_digest

    store, taxonomy = _open(config)
    code = _collect(config, store, taxonomy, "run")
    click.echo(str(write_digest(config, store, taxonomy, period)))
    sys.exit(code)


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
    from monitor.digest import Period, newest_mention, write_digest

    configure_logging(verbose, quiet)
    # The demo's platforms are the demo site: no real credentials are sent to it.
    for name in ("BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD", "MASTODON_TOKEN"):
        os.environ.pop(name, None)
    with serve_directory(DEMO_SITE) as base_url:
        os.environ["MONITOR_DEMO_SITE"] = base_url
        # PRAW is pointed at the demo site's recorded Reddit answers, with demo credentials.
        os.environ.update(
            praw_client_id="demo-client-id",
            praw_client_secret="demo-client-secret",
            praw_reddit_url=f"{base_url}/reddit",
            praw_oauth_url=f"{base_url}/reddit/",
            praw_short_url=f"{base_url}/reddit/short",
        )
        config = _load(DEMO_CONFIG, database)
        store, taxonomy = _open(config)
        code = _collect(config, store, taxonomy, "demo")
    newest = newest_mention(store, config.business)
    period = Period.week_containing(newest) if newest else Period.last_complete_week()
    click.echo(str(write_digest(config, store, taxonomy, period)))
    sys.exit(code)


@cli.command()
@common_options
@click.option("--runs", default=10, show_default=True, help="How many recent runs to list.")
def status(config: Config, runs: int) -> None:
    """Show the last runs and each source's health: last outcome, last success, failures in a row.

    Example:

        monitor status --config config/mybusiness.yaml
    """
    from monitor.status import recent_runs, source_health

    store, _ = _open(config)
    click.echo("Recent runs:")
    lines = recent_runs(store, runs)
    for run_line in lines:
        finished = run_line.finished_at.strftime("%Y-%m-%d %H:%M") if run_line.finished_at else "-"
        click.echo(
            f"  #{run_line.id} {run_line.command:6} {run_line.started_at:%Y-%m-%d %H:%M} → {finished}"
            f"  {run_line.status:11} {run_line.new} new, {run_line.failed_sources} source(s) failed"
        )
    if not lines:
        click.echo("  none yet")
    click.echo("Sources:")
    attention = 0
    for health in source_health(store):
        last_ok = health.last_ok.strftime("%Y-%m-%d") if health.last_ok else "never"
        flag = "!!" if health.failures_in_a_row else "  "
        attention += bool(health.failures_in_a_row)
        reason = f" ({health.last_reason})" if health.last_reason else ""
        click.echo(
            f"{flag}{health.business}/{health.source} [{health.type}]: {health.last_status}{reason}; "
            f"last ok {last_ok}; {health.failures_in_a_row} failure(s) in a row; "
            f"{health.mentions} mentions"
        )
    sys.exit(EXIT_FAILED if attention else EXIT_OK)


@cli.command()
@click.argument(
    "labelled",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the weights: a .npz file (default: config/learned.npz), or a .json "
    "file to read them.",
)
def learn(labelled: tuple[Path, ...], out: Path | None) -> None:
    """Fit the learned touchpoint and sentiment weights on labelled mentions.

    LABELLED are JSON-lines files of labelled mentions (``text``, ``source``, ``primary``,
    ``touchpoints`` with a sentiment each; see tests/data/touchpoints_train.jsonl). Mentions
    whose ``split`` is ``test`` are never learned from: they are kept for measuring.
    Run ``monitor rescore`` afterwards to judge stored mentions with the new weights.

    Example:

        monitor learn tests/data/touchpoints_train.jsonl tests/data/touchpoints_eval.jsonl
    """
    from monitor.learning import DEFAULT_MODEL, fit, read_labelled

    try:
        examples = [e for e in read_labelled(labelled) if e.split != "test"]
        model = fit(examples, sources=labelled)
    except (ValueError, RuntimeError) as exc:
        click.echo(f"monitor: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    target = out or DEFAULT_MODEL
    model.save(target)
    click.echo(
        f"{len(examples)} labelled mentions: {len(model.touchpoints.vocabulary)} touchpoint "
        f"features, {len(model.sentiment.vocabulary)} sentiment features written to {target}"
    )


@cli.command()
@common_options
def rescore(config: Config) -> None:
    """Score and map every stored mention again, e.g. after changing the touchpoint taxonomy.

    Safe to interrupt and to repeat: each batch is replaced in one transaction.

    Example:

        monitor rescore --config config/mybusiness.yaml
    """
    from monitor.lock import RunInProgress, run_lock
    from monitor.scoring import rescore as rescore_all

    store, taxonomy = _open(config)
    try:
        with run_lock(store.engine), _progress("re-scoring stored mentions"):
            count = rescore_all(store, taxonomy)
    except RunInProgress as exc:
        click.echo(f"monitor: {exc}; try again when it has finished", err=True)
        sys.exit(EXIT_BUSY)
    log.info("re-scored %d mentions", count)
    click.echo(f"{count} mentions re-scored")


@cli.command()
@common_options
@click.option(
    "--processes",
    type=click.IntRange(min=1, max=64),
    help="Scoring processes (default: crawl.scoring_processes, else one per CPU).",
)
def score(config: Config, processes: int | None) -> None:
    """Judge every stored mention that has no score yet: sentiment, sentences and touchpoints.

    `monitor run` and `monitor crawl` do this after collecting; run it alone after `monitor
    worker`s have crawled, or on more machines at once against a shared PostgreSQL database
    (each claims its own batches). Safe to interrupt and to repeat.

    Example:

        monitor score --config config/mybusiness.yaml --db postgresql+psycopg://db/monitor
    """
    from monitor.scoring import score_pending

    store, taxonomy = _open(config)
    with _progress("scoring the mentions that have no score yet"):
        result = score_pending(store, taxonomy, processes or config.scoring_processes)
    click.echo(f"{result.scored} mentions scored")
    if result.failed:
        click.echo(f"{result.failed} mention(s) could not be scored (see the log)", err=True)
        sys.exit(EXIT_FAILED)


@cli.command()
@common_options
@click.option("--offline", is_flag=True, help="Skip the network checks of each source.")
def doctor(config: Config, offline: bool) -> None:
    """Check config, database, credentials and each source's reachability; say what to fix.

    Example:

        monitor doctor --config config/mybusiness.yaml
    """
    from monitor.doctor import run_checks

    problems = 0
    for check in run_checks(config, reach=not offline, timeout=config.crawl.timeout):
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"{mark} {check.name}: {check.detail}")
        if not check.ok:
            problems += 1
            if check.fix:
                click.echo(f"     fix: {check.fix}")
        elif check.fix:
            click.echo(f"     note: {check.fix}")
    click.echo("all good" if not problems else f"{problems} problem(s)")
    sys.exit(EXIT_FAILED if problems else EXIT_OK)


@cli.command()
@common_options
@click.option(
    "--fresh",
    is_flag=True,
    help="First forget the queues and seen pages of a previous crawl (e.g. last week's).",
)
def enqueue(config: Config, fresh: bool) -> None:
    """Push every enabled spider source's start URLs to Redis for `monitor worker`s to crawl.

    Redis is MONITOR_REDIS_URL, else the config's redis_url, else redis://127.0.0.1:6379/0.

    Example:

        MONITOR_REDIS_URL=redis://queue.internal:6379/0 monitor enqueue --config config/mybusiness.yaml --fresh
    """
    from monitor.distributed import enqueue as push_start_urls

    try:
        pushed = push_start_urls(config, fresh)
    except Exception as exc:  # redis's connection errors; the message names the server
        raise click.ClickException(f"cannot reach Redis: {exc}") from None
    for key, count in pushed.items():
        log.info("%d start URL(s) pushed to %s", count, key)
    click.echo(f"{sum(pushed.values())} start URLs enqueued")


@cli.command()
@common_options
@click.option(
    "--idle",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Exit after this many seconds with nothing to crawl or score.",
)
@click.option(
    "--score/--no-score",
    default=True,
    show_default=True,
    help="Whenever the queue is empty, score unscored mentions, a batch at a time.",
)
def worker(config: Config, idle: int, score: bool) -> None:
    """Crawl from the shared Redis queue into the database, alongside any other workers.

    Start as many as you like, on any machine that reaches the same Redis and database;
    whenever a worker's queue is empty it scores unscored mentions (workers on PostgreSQL
    claim different batches), and it exits once it has had nothing to crawl or score for
    --idle seconds.

    Example:

        monitor worker --config config/mybusiness.yaml --db postgresql+psycopg://db/monitor --idle 30
    """
    from monitor.distributed import connect, run_worker

    try:
        connect(config)
    except Exception as exc:  # redis's connection errors; the message names the server
        raise click.ClickException(f"cannot reach Redis: {exc}") from None
    from monitor.scoring import IdleScorer, score_pending

    store, taxonomy = _open(config)
    scorer = IdleScorer(store, taxonomy) if score else None
    outcomes = run_worker(config, store, taxonomy, idle, scorer)
    new = sum(o.new for o in outcomes)
    log.info(
        "worker done: %d new mentions, %d already stored", new, sum(o.duplicates for o in outcomes)
    )
    click.echo(f"{new} new mentions")
    if scorer is not None:
        # What scoring while idle did not reach: mentions committed with an id it had passed,
        # batches another scorer held and never finished, anything stored after the crawl.
        result = scorer.result + score_pending(store, taxonomy, config.scoring_processes)
        click.echo(f"{result.scored} mentions scored")


def main() -> None:
    cli(prog_name="monitor")
