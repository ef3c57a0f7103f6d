"""Every code block of the README and the docs runs, and prints what the page shows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from docfix import REPO, page_id, pages

from docsite.fences import RUNNABLE, page_blocks
from docsite.pages import PageError, run_page


@pytest.mark.slow
@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_page_runs_and_prints_what_it_shows(page: Path) -> None:
    run_page(page)


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_every_block_is_run_or_says_why_not(page: Path) -> None:
    for block in page_blocks(page):
        assert block.lang not in ("pycon", "py", "python3", "shell", "sh-session"), (
            f"{page_id(page)}:{block.line}: use ```python, ```console or ```bash so the "
            "block is run")
        if block.lang == "python":
            assert ">>>" not in block.text, f"{page_id(page)}:{block.line}: no >>> prompts"
        if block.skip is not None:
            assert block.lang in RUNNABLE and len(block.skip) > 10, (
                f"{page_id(page)}:{block.line}: a skip needs a runnable block and a reason")


def test_a_copy_with_one_printed_number_changed_fails(tmp_path: Path) -> None:
    """The README's first shown output with one number 20% off: that block fails, naming it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = next(b for b in page_blocks(REPO / "README.md") if b.output is not None)
    shown = first.output.text
    number = re.findall(r"\d+\.\d+", shown)[-1]
    changed = f"{float(number) * 1.2:.{len(number.split('.')[1])}f}"
    copy = tmp_path / "README.md"
    copy.write_text(readme.replace(shown, shown.replace(number, changed)), encoding="utf-8")
    with pytest.raises(PageError, match=rf"printed {re.escape(number)} where the page shows "
                                        rf"{re.escape(changed)}"):
        run_page(copy, until=first.line)
    shutil.copy(REPO / "README.md", copy)  # unchanged, the same block passes
    run_page(copy, until=first.line)
