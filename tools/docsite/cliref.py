"""The command-line reference, generated from the parser that ``lumos`` itself uses.

``<!-- cli-reference -->`` on a page becomes one section per sub-command (what it does, its
usage line, a table of its arguments). The options every sub-command shares are listed once.
Nothing is written twice: a new option or command appears in the docs as soon as it exists.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

MARKER = re.compile(r"^<!--\s*cli-reference\s*-->[ \t]*$", re.MULTILINE)
WIDTH = 96


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers of ``parser``, by name, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _arguments(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        yield action


def _name(action: argparse.Action) -> str:
    if not action.option_strings:
        return str(action.metavar or action.dest)
    takes_value = action.nargs != 0
    meta = action.metavar or action.dest.upper()
    return ", ".join(f"{o} {meta}" if takes_value else o for o in action.option_strings)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    text = formatter._expand_help(action) if action.help else ""
    extra = []
    if action.required and action.option_strings:
        extra.append("required")
    if isinstance(action, argparse._AppendAction):
        extra.append("repeatable")
    if action.choices is not None and not isinstance(action.choices, dict):
        extra.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    text = " ".join(text.split())
    if extra:
        text = f"{text} ({'; '.join(extra)})" if text else "; ".join(extra)
    return _cell(text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _signature(parser: argparse.ArgumentParser, action: argparse.Action) -> tuple[str, str]:
    return (_name(action), _help(parser, action))


def shared(parsers: dict[str, argparse.ArgumentParser]) -> list[tuple[str, str]]:
    """Arguments that every sub-command has with the same name and help."""
    rows = [set(_signature(p, a) for a in _arguments(p)) for p in parsers.values()]
    if not rows:
        return []
    common = set.intersection(*rows)
    first = next(iter(parsers.values()))
    return [s for a in _arguments(first) if (s := _signature(first, a)) in common]


def _table(rows: list[tuple[str, str]]) -> list[str]:
    out = ["| argument | what it does |", "|---|---|"]
    out += [f"| `{name}` | {text} |" for name, text in rows]
    return out


def reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference of the whole command line as markdown."""
    if parser is None:
        from lumos.cli import build_parser

        parser = build_parser()
    subs = subcommands(parser)
    common = shared(subs)
    lines = ["```text", _usage(parser), "```", "",
             " ".join((parser.description or "").split()), "",
             "| command | what it does |", "|---|---|"]
    lines += [f"| [`{parser.prog} {n}`](#{parser.prog}-{n}) | {_cell(p.description or '')} |"
              for n, p in subs.items()]
    lines += ["", "## Options of every command", "",
              "`lumos --version` prints the version; `lumos COMMAND --help` prints a command's "
              "options. Every command also takes:", "", *_table(common), ""]
    for name, sub in subs.items():
        own = [s for a in _arguments(sub) if (s := _signature(sub, a)) not in common]
        lines += [f"## `{parser.prog} {name}` {{#{parser.prog}-{name}}}", "",
                  _cell(sub.description or ""), "", "```text", _usage(sub), "```", "",
                  *_table(own), ""]
    return "\n".join(lines)


def expand_markers(markdown: str) -> str:
    """``markdown`` with the CLI marker replaced by :func:`reference`."""
    if not MARKER.search(markdown):
        return markdown
    text = reference()
    return MARKER.sub(lambda _: text, markdown)
