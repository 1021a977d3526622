"""A broken config stops the run with a message naming the file, the key and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_monitor

GOOD = """\
businesses:
  - name: Example Bakery
    sources:
      - name: reviews
        type: structured_data
        start_urls: ["https://reviews.example/example-bakery"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "business.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            GOOD.replace("    sources:", "    colour: blue\n    sources:"),
            "businesses[0]: unknown key 'colour'",
        ),
        (
            GOOD.replace("  - name: Example Bakery\n", "  - aliases: [Bakery]\n"),
            "businesses[0].name: required key is missing",
        ),
        (
            GOOD.replace("https://reviews.example/example-bakery", "reviews.example/bakery"),
            "businesses[0].sources[0].start_urls[0]: 'reviews.example/bakery' is not valid: expected an absolute http://, https:// or file:// URL",
        ),
        (
            GOOD.replace("name: Example Bakery", "name: '  '"),
            "businesses[0].name: '  ' is not valid: the business name must not be blank",
        ),
        (
            GOOD.replace("structured_data", "carrier_pigeon"),
            "businesses[0].sources[0].type: 'carrier_pigeon' is not valid: expected one of: 'structured_data', 'selectors', 'feed', 'reddit', 'mastodon', 'bluesky', 'hackernews'",
        ),
        ("businesses: [\n", "not valid YAML"),
        (
            GOOD.replace("https://reviews.example/example-bakery", "${NO_SUCH_VARIABLE_SET}/x"),
            "businesses[0].sources[0].start_urls[0]: environment variable NO_SUCH_VARIABLE_SET is not set",
        ),
    ],
    ids=[
        "unknown-key",
        "missing-name",
        "bad-url",
        "blank-name",
        "bad-type",
        "bad-yaml",
        "unset-env",
    ],
)
@pytest.mark.parametrize("command", ["crawl", "digest", "run"])
def test_bad_config_exits_2_with_a_clear_message(
    tmp_path: Path, broken: str, expected: str, command: str
) -> None:
    path = _write(tmp_path, broken)
    result = run_monitor(command, "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "var").exists(), "nothing is created before the config is valid"


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_monitor("digest", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "no such config file" in result.stderr


def test_bundled_configs_are_valid() -> None:
    from monitor.config import load_config

    root = Path(__file__).resolve().parent.parent / "config"
    for name in ("demo.yaml", "example.yaml"):
        config = load_config(root / name)
        assert config.businesses[0].sources
