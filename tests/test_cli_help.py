"""Every command explains itself: a summary, an example, and a place in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_command_has_help_with_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert f"monitor {name}" in result.output


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_command_is_documented_in_the_readme(name: str) -> None:
    assert f"monitor {name}" in README


def test_unknown_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["digest", "--no-such-option"])
    assert result.exit_code == 2
