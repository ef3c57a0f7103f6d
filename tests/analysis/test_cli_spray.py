"""``lumos spray`` on a store: the analysis files, the static page, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lumos.cli import main


@pytest.mark.slow
def test_spray_command_writes_analyses_and_a_page(store: tuple[Path, np.ndarray],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    directory, _ = store
    page = directory / "page.html"
    assert main(["spray", str(directory), "--method", "ig", "--method", "lrp", "--label", "5",
                 "--clusters", "2,3", "--html", str(page), "--quiet"]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(directory / "analysis-ig.h5"), str(directory / "analysis-lrp.h5"),
                   str(page)]
    assert page.stat().st_size > 10_000


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "nope"], "no attributions for method 'nope'"),
    (["--method", "ig", "--label", "4"], "class 4 has no heatmaps"),
    (["--method", "ig", "--clusters", "1,x"], "--clusters must be integers"),
    (["--method", "ig", "--clusters", "1"], "--clusters needs counts of at least 2"),
])
def test_spray_command_errors_are_one_line(store: tuple[Path, np.ndarray], args: list[str],
                                           message: str, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    directory, _ = store
    assert main(["spray", str(directory), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
