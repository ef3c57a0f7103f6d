"""Errors shared by the command line, its commands and the library below them.

:class:`UserError` lives here, below :mod:`lumos.cli` and :mod:`lumos.commands`, so neither
imports the other to raise or catch it.
"""

from __future__ import annotations


class UserError(Exception):
    """An expected failure the user can fix; the CLI prints it as one line, exit code 2."""
