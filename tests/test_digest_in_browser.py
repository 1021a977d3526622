"""The digest as a reader sees it: opened in a real browser (headless Chromium) on a desktop
and on a phone, with nothing loaded from outside the file and nothing run from web text.

Needs Debian's Chromium at /usr/bin/chromium and the ``playwright`` package; ``make test``
installs both. Playwright drives the system Chromium: ``playwright install`` downloads browsers
of its own, which this machine's closed network refuses.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from monitor.config import parse_config
from monitor.digest import Period, write_digest
from monitor.pipeline import Ingest
from monitor.records import MentionRecord
from monitor.scoring import score_pending
from monitor.store import Store
from monitor.touchpoints import load_taxonomy
from tests.conftest import run_monitor

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking, component-update and sync flags Chromium keeps trying to
# reach Google's hosts, and this machine's closed network refuses those connections. Playwright
# gives every launch a new, empty profile directory of its own (it refuses --user-data-dir in
# these args), so no earlier state leaks into a run.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 900}, "device_scale_factor": 1},
    # An iPhone 12–15 sized screen; is_mobile makes Chromium honour the page's meta viewport.
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}
DEMO_DIGEST = Path("var/digests/brightwater-cycles-2026-W47.html")
# Rounding of fractional layout widths may add one pixel without a visible scroll bar.
SLACK_PX = 1


# --------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless system Chromium, driven by Playwright; a clear failure, not a skip, without it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        installed = False
    else:
        installed = True
    if not installed:  # failed outside the except block, so no chained traceback
        pytest.fail(
            "the `playwright` Python package is not installed, so the digest cannot be checked "
            "in a browser: run `make test`, which installs it (with Debian's chromium)",
            pytrace=False,
        )
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}, so the digest cannot be checked in a "
            "browser: run `make test`, which installs Debian's chromium package",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class OpenedDigest:
    page: Page
    width: int
    strays: list[str] = field(default_factory=list)
    """Every request other than the digest file itself: the digest must need nothing else."""
    dialogs: list[str] = field(default_factory=list)
    """Messages of alert/confirm/prompt dialogs: any at all means web text ran as script."""


@contextmanager
def open_digest(browser: Browser, path: Path, viewport: str) -> Iterator[OpenedDigest]:
    """The digest file loaded at ``viewport``, every request but the file itself refused."""
    url = path.resolve().as_uri()
    context = browser.new_context(**VIEWPORTS[viewport])
    try:
        page = context.new_page()
        opened = OpenedDigest(page, VIEWPORTS[viewport]["viewport"]["width"])

        def only_the_document(route: Route) -> None:
            if route.request.url == url:
                route.continue_()
            else:
                opened.strays.append(route.request.url)
                route.abort()

        def note_and_dismiss(dialog: Dialog) -> None:
            opened.dialogs.append(dialog.message)
            dialog.dismiss()

        context.route("**/*", only_the_document)
        page.on("dialog", note_and_dismiss)
        page.goto(url, wait_until="load")
        yield opened
    finally:
        context.close()


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """A full-page PNG in the test's tmp dir, copied to $MONITOR_SCREENSHOTS for a person to see."""
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    wanted = os.environ.get("MONITOR_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(wanted) / shot.name)
    return shot


def assert_no_horizontal_overflow(opened: OpenedDigest) -> None:
    """Nothing reaches past the screen's width, so nobody has to scroll sideways.

    Compared with the width we set, not only with ``window.innerWidth``: a phone browser zooms
    out to fit a page that is too wide, and then innerWidth grows to the page's width too.
    """
    page = opened.page
    inner_width = page.evaluate("window.innerWidth")
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    if max(scroll_width, inner_width) > opened.width + SLACK_PX:
        culprits = page.evaluate(
            """(limit) => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > limit
                             || (e.scrollWidth > e.clientWidth + 1
                                 && getComputedStyle(e).overflowX === 'visible'))
                .slice(-8)
                .map(e => `${e.tagName.toLowerCase()}${e.className ? '.' + e.className : ''}`
                          + ` right=${Math.round(e.getBoundingClientRect().right)}`)""",
            opened.width + SLACK_PX,
        )
        pytest.fail(
            f"the page is {scroll_width}px wide on a {opened.width}px screen "
            f"(window.innerWidth {inner_width}); sticking out: {culprits}",
            pytrace=False,
        )


def assert_within_screen_width(opened: OpenedDigest, selector: str) -> None:
    """Shown, with a non-empty box that lies inside the first screen width (no sideways scroll)."""
    element = opened.page.locator(selector).first
    assert element.is_visible(), f"{selector} is not visible"
    box = element.bounding_box()
    assert box is not None, f"{selector} has no box"
    assert box["width"] > 0 and box["height"] > 0, f"{selector} is empty: {box}"
    assert box["x"] >= 0, f"{selector} starts left of the screen: {box}"
    assert box["x"] + box["width"] <= opened.width + SLACK_PX, (
        f"{selector} reaches past the {opened.width}px screen: {box}"
    )


# --------------------------------------------------------------------------- the demo's digest


@pytest.fixture(scope="module")
def demo_digest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    result = run_monitor("demo", cwd=workdir)
    assert result.returncode == 0, result.stderr
    path = workdir / DEMO_DIGEST
    assert path.is_file(), result.stdout
    return path


def test_the_guards_see_an_outside_asset_and_a_dialog(browser: Browser, tmp_path: Path) -> None:
    """The guards would catch an external stylesheet, an image and an alert: their silence on
    the digest means something."""
    page = tmp_path / "leaky.html"
    page.write_text(
        '<!DOCTYPE html><link rel="stylesheet" href="https://cdn.example/x.css">'
        '<img src="logo.png" alt=""><script>alert("ran")</script>',
        encoding="utf-8",
    )
    with open_digest(browser, page, "desktop") as opened:
        assert sorted(opened.strays) == [
            (tmp_path / "logo.png").as_uri(),
            "https://cdn.example/x.css",
        ]
        assert opened.dialogs == ["ran"]


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_demo_digest_reads_on_desktop_and_phone(
    browser: Browser, demo_digest: Path, tmp_path: Path, viewport: str
) -> None:
    with open_digest(browser, demo_digest, viewport) as opened:
        shot = screenshot(opened.page, tmp_path, f"digest-{viewport}")
        assert shot.stat().st_size > 0
        assert_no_horizontal_overflow(opened)
        assert_within_screen_width(opened, "#scorecard")
        assert_within_screen_width(opened, "xpath=//*[@id='scorecard']/following::table[1]")
        assert opened.strays == [], "the digest loaded something besides itself"
        assert opened.dialogs == []


# --------------------------------------------------------------------------- hostile web text

# One 5,000-character word: no space, hyphen or punctuation where a line could break.
LONG_WORD = "overpriced" * 500
SCRIPT_TITLE = "<script>alert('title')</script><img src=x onerror=alert('img')>"
# Ingest strips real tags from titles, so the markup arrives as the page's escaped text: after
# ingest it is literally SCRIPT_TITLE, which only the digest's escaping keeps from running.
SCRIPT_TITLE_AS_SCRAPED = SCRIPT_TITLE.replace("<", "&lt;").replace(">", "&gt;")


def _hostile_digest(tmp_path: Path) -> Path:
    config = parse_config(
        {
            "businesses": [{"name": "Example Bakery", "sources": []}],
            "database": f"sqlite:///{tmp_path / 'm.db'}",
            "output_dir": str(tmp_path / "digests"),
        },
        tmp_path / "business.yaml",
    )
    store = Store.open(config.database)
    try:
        taxonomy = load_taxonomy(config)
        business_id = store.business_id("example-bakery", "Example Bakery")
        source_id = store.source_id(business_id, "reviews", "structured_data")
        ingest = Ingest(store, taxonomy, business_id, source_id)
        # One star and no reply: shown under "Needs a reply", text and all.
        ingest.add(
            MentionRecord(
                business="example-bakery",
                source="reviews",
                text=LONG_WORD,
                title=SCRIPT_TITLE_AS_SCRAPED,
                url="https://reviews.example/r/word",
                external_id="r-word",
                rating=0.0,
                rating_raw="1",
                published_at=datetime(2026, 11, 17, 12, 0),
            )
        )
        # Negative sentences around the long word: a worst moment, shown with its judging
        # sentence highlighted between slices of the word; the address is not a web link, so it
        # is shown as unbroken text too.
        ingest.add(
            MentionRecord(
                business="example-bakery",
                source="reviews",
                text=(
                    f"The staff were rude and the delivery was late. {LONG_WORD.capitalize()}. "
                    "Awful, never again."
                ),
                title=SCRIPT_TITLE_AS_SCRAPED,
                url=f"ftp://reviews.example/{LONG_WORD}",
                external_id="r-sentence",
                published_at=datetime(2026, 11, 18, 12, 0),
            )
        )
        ingest.flush()
        score_pending(store, taxonomy)
        return write_digest(config, store, taxonomy, Period.parse_week("2026-W47"))
    finally:
        store.close()


def test_hostile_web_text_neither_overflows_nor_runs_on_a_phone(
    browser: Browser, tmp_path: Path
) -> None:
    path = _hostile_digest(tmp_path)
    with open_digest(browser, path, "phone") as opened:
        screenshot(opened.page, tmp_path, "digest-hostile-phone")
        text = opened.page.locator("body").inner_text()
        assert LONG_WORD[:500] in text, "the long word is not shown, so nothing was tested"
        assert SCRIPT_TITLE in text, "the title should be shown as text"
        assert_no_horizontal_overflow(opened)
        assert opened.page.locator(".mention").count() >= 2
        for index in range(opened.page.locator(".mention").count()):
            assert_within_screen_width(opened, f".mention >> nth={index}")
        assert opened.dialogs == [], "text from the web ran as script"
        assert opened.strays == [], "text from the web made the page load something"
