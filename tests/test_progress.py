"""Progress bars: tqdm on a terminal and in notebooks, one summary line in logs."""

from __future__ import annotations

import io
import sys
import types

import pytest

from lumos import progress
from lumos.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_tqdm_bar_that_redraws() -> None:
    stream = Tty()
    with Progress(4, "evaluate", stream=stream) as bar:
        for _ in range(4):
            bar.update(1, postfix="ig")
        bar.write("one line of its own")
    text = stream.getvalue()
    assert "\r" in text and "evaluate: 100%|" in text and "4/4" in text and "ig]" in text
    assert "one line of its own\n" in text and text.endswith("\n")


def test_a_log_gets_one_summary_line_and_the_written_lines() -> None:
    stream = io.StringIO()
    with Progress(945, "train", stream=stream) as bar:
        for _ in range(945):
            bar.update(1, "epoch 15/15 loss 0.1910")
        bar.write("epoch 15 loss 0.0618")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "epoch 15 loss 0.0618" and len(lines) == 2 and "\r" not in lines[1]
    assert lines[1].startswith("train: 100%|##########| 945/945 [")
    assert lines[1].endswith(", epoch 15/15 loss 0.1910]")


def test_bytes_unknown_totals_resumes_and_quiet() -> None:
    stream = io.StringIO()
    with Progress(None, "mnist.gz", bytes=True, initial=1024, stream=stream) as bar:
        bar.update(3 * 1024 * 1024)
    assert stream.getvalue().startswith("mnist.gz: 3.00M") and stream.getvalue().count("\n") == 1
    quiet = io.StringIO()
    with Progress(2, "x", enabled=False, stream=quiet) as bar:
        bar.update(2)
        bar.write("hidden")
    assert quiet.getvalue() == ""
    own = io.StringIO()
    with Progress(2, "x", stream=own, summary=False) as bar:
        bar.update(2)
    assert own.getvalue() == ""


def test_a_notebook_with_widgets_gets_tqdm_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, object]] = []

    class FakeBar:
        def __init__(self, **kwargs: object) -> None:
            made.append(kwargs)

        def update(self, n: int) -> None:
            made.append({"update": n})

        def close(self) -> None:
            made.append({"closed": True})

    monkeypatch.setitem(sys.modules, "tqdm.auto", types.SimpleNamespace(tqdm=FakeBar))
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    stream = io.StringIO()  # a kernel's stderr is no terminal: the widget is chosen anyway
    with Progress(3, "spray ig", stream=stream) as bar:
        bar.update(3)
    assert made[0]["total"] == 3 and made[0]["desc"] == "spray ig"
    assert made[1:] == [{"update": 3}, {"closed": True}] and stream.getvalue() == ""


def test_in_notebook_needs_a_kernel_and_widgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ipykernel.zmqshell", raising=False)
    assert not progress.in_notebook()
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails: no widgets
    assert not progress.in_notebook()
