"""The CLI reference is generated from the parser: every command and option is in it."""

from __future__ import annotations

import argparse

from docsite import cliref
from lumos.cli import COMMANDS, build_parser


def test_every_command_and_option_is_documented() -> None:
    parser = build_parser()
    text = cliref.reference(parser)
    subs = cliref.subcommands(parser)
    assert list(subs) == list(COMMANDS)
    for name, sub in subs.items():
        assert f"## `lumos {name}`" in text and sub.format_usage().split()[2] in text
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = action.option_strings[0] if action.option_strings else (
                action.metavar or action.dest)
            assert f"`{label}" in text, f"lumos {name}: {label} missing from the reference"
    assert text.count("| `--device DEVICE` |") == 1  # shared options are listed once


def test_the_page_holds_only_the_marker() -> None:
    from docfix import DOCS

    page = (DOCS / "guide" / "cli.md").read_text(encoding="utf-8")
    assert "<!-- cli-reference -->" in page and "--shard-size" not in page
    assert "--shard-size" in cliref.expand_markers(page)
