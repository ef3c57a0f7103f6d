"""Every tutorial runs top to bottom in a fresh Jupyter kernel and renders with its outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from docfix import DOCS

from docsite import notebooks


@pytest.mark.slow
@pytest.mark.parametrize("script", notebooks.scripts(DOCS), ids=lambda p: p.stem)
def test_tutorial_runs_and_renders(script: Path) -> None:
    nb = notebooks.execute(script)  # executed now, or earlier from these exact sources
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    page, figures = notebooks.render(nb, script.stem)
    assert page.startswith("# ") and "```python" in page and "```text" in page
    assert figures, f"{script.name} shows no figure"
    assert all(data.startswith(b"\x89PNG") for data in figures.values())


def test_rendering_keeps_the_last_draw_of_a_bar_and_drops_widgets() -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("work()", outputs=[
            nbformat.v4.new_output("stream", name="stderr", text="x  0%\rx 50%\rx 100%\ndone\n"),
            nbformat.v4.new_output("display_data", data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "1"},
                "text/plain": "HBox()"}),
        ])])
    page, figures = notebooks.render(nb, "t")
    assert "x 100%\ndone" in page and "x  0%" not in page and "HBox" not in page
    assert not figures and "[the notebook](t.ipynb)" in page
