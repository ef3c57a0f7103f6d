"""The rules by which printed output is compared with the output a page shows."""

from __future__ import annotations

import pytest

from docsite.compare import allowance, mismatch
from docsite.fences import MarkupError, blocks


def test_numbers_within_one_percent_or_half_a_last_digit() -> None:
    assert allowance("0.1356", 0.01) == pytest.approx(0.001356)
    assert allowance("51", 0.01) == 0.51 and allowance("1e-12", 0.01) == pytest.approx(5e-13)
    assert mismatch("delta 0.1356", "delta 0.1369") is None
    problem = mismatch("delta 0.1356", "delta 0.1456")
    assert problem is not None and "printed 0.1456 where the page shows 0.1356" in str(problem)
    assert mismatch("[51, 33]", "[52, 33]") is not None
    assert mismatch("(8, 1, 28, 28)", "(8, 1, 28, 29)") is not None
    assert mismatch("12.5 ± 0.28", "12.6 ± 0.28", rtol=0.05) is None


def test_text_spaces_blank_lines_and_ellipses() -> None:
    assert mismatch("a   b\n\nc", "a b\nc\n\n") is None
    assert mismatch("espresso (0.86)", "latte (0.86)") is not None
    assert mismatch("IG: 100 inputs in ... s", "IG: 100 inputs in 0.66 s") is None
    assert mismatch("start\n...\nend", "start\n1\n2\nend") is None
    assert mismatch("start\n...\nend", "start\nend") is None
    assert mismatch("a\nb", "a\nb\nc") is not None and mismatch("a\nb\nc", "a\nb") is not None
    assert mismatch("date 2026-12-05, ratio -0.05", "date 2026-12-05, ratio -0.05") is None


def test_blocks_markers_and_outputs() -> None:
    page = "\n".join([
        "```python", "print(1)", "```", "", "```text", "1", "```",
        "<!-- test: skip needs the network to download the data -->", "```bash", "curl x",
        "```", '```toml title="a.toml"', "x = 1", "```"])
    found = blocks(page)
    assert [b.lang for b in found] == ["python", "text", "bash", "toml"]
    assert found[0].output is found[1] and found[2].skip.startswith("needs the network")
    assert 'title="a.toml"' in found[3].info and found[3].text == "x = 1\n"
    with pytest.raises(MarkupError, match="unknown test marker"):
        blocks("<!-- test: sometimes -->\n```python\n```")
    with pytest.raises(MarkupError, match="right before a fenced block"):
        blocks("<!-- test: skip a reason here -->\nprose\n```python\n```")
    with pytest.raises(MarkupError, match="never closed"):
        blocks("```python\nprint(1)\n")
