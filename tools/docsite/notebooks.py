"""The tutorials: jupytext percent scripts, executed in a Jupyter kernel, rendered with outputs.

``docs/tutorials/NAME.py`` opens as a notebook in Jupyter (with jupytext) and runs as a plain
script. :func:`execute` runs it in a fresh ``python3`` kernel in a temporary folder and keeps the
executed notebook under ``build/docs-cache/`` (or ``$LUMOS_DOCS_CACHE``), keyed by the script,
the lumos sources and this module, so ``make test`` (which executes every tutorial) and
``make docs`` (which shows them) run each one once. :func:`render` turns the notebook into a
markdown page and its figures.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TIMEOUT = 600


class TutorialError(RuntimeError):
    """A tutorial raised: names the tutorial, the cell and the error."""


def scripts(docs: Path) -> list[Path]:
    """The tutorial scripts under ``docs/tutorials``."""
    return sorted((docs / "tutorials").glob("*.py"))


def cache_dir() -> Path:
    """Where executed notebooks are kept."""
    return Path(os.environ.get("LUMOS_DOCS_CACHE", REPO / "build" / "docs-cache")) / "tutorials"


def fingerprint(script: Path) -> str:
    """A digest of what a tutorial's outputs depend on: the script, the lumos sources, and the
    versions of Python and of the packages that compute (torch, torchvision, numpy)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256(script.read_bytes())
    for name in ("torch", "torchvision", "numpy"):
        try:
            h.update(f"{name}=={version(name)}".encode())
        except PackageNotFoundError:
            h.update(f"{name} missing".encode())
    h.update(platform.python_version().encode())
    src = REPO / "src" / "lumos"
    for path in sorted(src.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(src)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def execute(script: Path, *, fresh: bool = False) -> Any:
    """The executed notebook of ``script`` (from the cache unless ``fresh`` or out of date).

    Raises
    ------
    TutorialError
        When a cell raises; the message names the cell and the error.
    """
    import jupytext
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    cached = cache_dir() / f"{script.stem}-{fingerprint(script)}.ipynb"
    if cached.is_file() and not fresh:
        return nbformat.read(cached, as_version=4)
    nb = jupytext.read(script)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    with tempfile.TemporaryDirectory(prefix=f"lumos-tutorial-{script.stem}-") as work:
        # IPC sockets in the temporary folder: no TCP port, nothing reachable from elsewhere
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(work) / "kernel"))
        client = NotebookClient(nb, km=km, timeout=TIMEOUT, kernel_name="python3",
                                resources={"metadata": {"path": work}})
        try:
            client.execute()
        except CellExecutionError as err:
            text = ANSI.sub("", str(err)).strip()
            raise TutorialError(f"{script}: {text.splitlines()[-1]}\n{text}") from err
    cached.parent.mkdir(parents=True, exist_ok=True)
    for old in cached.parent.glob(f"{script.stem}-*.ipynb"):
        old.unlink()
    tmp = cached.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, cached)
    return nb


def _text(value: str | list[str]) -> str:
    text = "".join(value) if isinstance(value, list) else value
    text = ANSI.sub("", text)
    # a bar that redraws with carriage returns: keep what the last draw left on each line
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _fence(text: str, lang: str = "text") -> str:
    text = text.rstrip("\n")
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{lang}\n{text}\n{ticks}"


@dataclass
class Rendered:
    """A tutorial as site files: the page, its figures and the executed notebook."""

    files: dict[str, str | bytes] = field(default_factory=dict)


def render(nb: Any, stem: str) -> tuple[str, dict[str, bytes]]:
    """The notebook as markdown (outputs included) and its figures, keyed by site path."""
    parts: list[str] = []
    figures: dict[str, bytes] = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        elif cell.cell_type == "code" and cell.source.strip():
            parts.append(_fence(cell.source, "python"))
            parts += _outputs(cell.get("outputs", []), stem, i, figures)
        if i == 0:
            parts.append(f"*Run it yourself: [the notebook]({stem}.ipynb) (executed, with "
                         f"outputs) or [the script]({stem}.py) (`jupytext --to notebook` "
                         "turns it into a notebook; `python` runs it as it is).*")
    return "\n\n".join(parts) + "\n", figures


def _outputs(outputs: list[Any], stem: str, cell: int, figures: dict[str, bytes]) -> list[str]:
    parts = []
    for k, out in enumerate(outputs):
        kind = out.get("output_type")
        if kind == "stream":
            text = _text(out.get("text", ""))
            if text.strip():
                parts.append(_fence(text))
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            if "image/png" in data:
                name = f"{stem}-{cell}-{k}.png"
                figures[f"tutorials/figures/{name}"] = base64.b64decode(data["image/png"])
                parts.append(f"![output of the cell above](figures/{name})")
            elif "application/vnd.jupyter.widget-view+json" in data:
                continue  # a live widget (a progress bar): nothing to show on a static page
            elif "text/html" in data:
                parts.append(_text(data["text/html"]))
            elif "text/plain" in data:
                parts.append(_fence(_text(data["text/plain"])))
    return parts


def rendered(script: Path) -> Rendered:
    """``script`` executed (or taken from the cache) and rendered as site files.

    With ``LUMOS_DOCS_EXECUTE=0`` a tutorial that is not in the cache is shown without outputs
    and a warning is logged, so a quick ``mkdocs serve`` need not run it; ``--strict`` turns
    that warning into an error, so no such page can be published.
    """
    import jupytext
    import nbformat

    cached = cache_dir() / f"{script.stem}-{fingerprint(script)}.ipynb"
    if os.environ.get("LUMOS_DOCS_EXECUTE") == "0" and not cached.is_file():
        logging.getLogger("mkdocs.hooks.lumos").warning(
            "tutorial %s shown without outputs (LUMOS_DOCS_EXECUTE=0)", script.name)
        nb = jupytext.read(script)
    else:
        nb = execute(script)
    page, figures = render(nb, script.stem)
    out = Rendered({f"tutorials/{script.stem}.md": page,
                    f"tutorials/{script.stem}.ipynb": nbformat.writes(nb)})
    out.files.update(figures)
    return out
