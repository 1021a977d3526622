"""Delivery and export: the digest by e-mail to a local SMTP server, the mentions as CSV/JSON."""

from __future__ import annotations

import csv
import email
import io
import json
import socket
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from monitor.digest import Period
from monitor.export import mention_rows, write_csv, write_json
from tests.conftest import run_monitor
from tests.store_builder import StoreBuilder
from tests.test_digest_scorecard import midweek


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # a free port: the controller checks it can connect to it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _config_file(builder: StoreBuilder) -> Path:
    path = builder.tmp_path / "business.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": builder.config.database,
                "output_dir": builder.config.output_dir,
                "businesses": [{"name": "Example Bakery", "sources": []}],
                "digest": {"recipients": ["owner@example-bakery.example"]},
            }
        ),
        encoding="utf-8",
    )
    return path


def test_digest_is_sent_with_html_and_text_parts(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    builder = StoreBuilder(tmp_path)
    builder.add(midweek(47), "staff_attitude", -0.6, text="<script>alert(1)</script> rude staff")
    result = run_monitor(
        "digest",
        "--config",
        str(_config_file(builder)),
        "--week",
        "2026-W47",
        "--send",
        cwd=tmp_path,
        env={
            "MONITOR_SMTP_HOST": "127.0.0.1",
            "MONITOR_SMTP_PORT": str(port),
            "MONITOR_SMTP_TLS": "none",
            "MONITOR_SMTP_FROM": "monitor@example-bakery.example",
        },
    )
    assert result.returncode == 0, result.stderr
    [(sender, recipients, raw)] = inbox.messages
    assert sender == "monitor@example-bakery.example"
    assert recipients == ["owner@example-bakery.example"]
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message["Subject"] == "Example Bakery: moments of truth, 2026-W47"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Customer mentions: 1" in text
    assert "<h1>Example Bakery: moments of truth</h1>" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_sending_without_smtp_settings_is_a_clear_error(tmp_path: Path) -> None:
    builder = StoreBuilder(tmp_path)
    result = run_monitor("digest", "--config", str(_config_file(builder)), "--send", cwd=tmp_path)
    assert result.returncode == 1
    assert "set MONITOR_SMTP_HOST" in result.stderr and "Traceback" not in result.stderr


def test_export_holds_the_periods_mentions(tmp_path: Path) -> None:
    builder = StoreBuilder(tmp_path)
    inside = [
        builder.add(midweek(47, n), "billing", -0.3, text=f'Bill {n}, "quoted", comma')
        for n in range(3)
    ]
    builder.add(midweek(46), "billing", 0.3)
    week = Period.parse_week("2026-W47")
    out = io.StringIO()
    assert write_csv(mention_rows(builder.store, builder.config.business, week), out) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["url"].rsplit("/", 1)[-1] for r in rows] == [str(n) for n in inside]
    assert rows[0]["text"] == 'Bill 0, "quoted", comma' and rows[0]["touchpoint"] == "billing"
    out = io.StringIO()
    write_json(mention_rows(builder.store, builder.config.business, week), out)
    parsed = json.loads(out.getvalue())
    assert [p["compound"] for p in parsed] == [-0.3, -0.3, -0.3]
    empty = io.StringIO()
    write_json(iter([]), empty)
    assert json.loads(empty.getvalue()) == []
