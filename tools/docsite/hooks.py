"""MkDocs hooks of lumos's site (``hooks:`` in mkdocs.yml).

- every tutorial script ``docs/tutorials/NAME.py`` becomes the page ``tutorials/NAME.md`` with
  its outputs (executed once, then reused while neither the script nor lumos changed), plus the
  executed notebook ``tutorials/NAME.ipynb`` to download;
- ``<!-- api: PACKAGE -->`` and ``<!-- cli-reference -->`` are expanded;
- ``<!-- test: skip REASON -->`` shows its reason on the page;
- ``$...$`` and ``$$...$$`` become MathML.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docsite import apiref, cliref, formulas, notebooks

SKIP = re.compile(r"^(?P<indent>[ \t]*)<!--\s*test:\s*skip\s+(?P<why>.*?)\s*-->[ \t]*$",
                  re.MULTILINE)


def on_files(files: Any, config: Any) -> Any:
    """Add the rendered tutorials (pages, figures, notebooks) to the site's files."""
    from mkdocs.structure.files import File

    docs = Path(config["docs_dir"])
    for script in notebooks.scripts(docs):
        rendered = notebooks.rendered(script)
        for uri, content in rendered.files.items():
            files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Expand the generated parts of a page and turn formulas into MathML."""
    uri = page.file.src_uri
    markdown = apiref.expand_markers(markdown, uri)
    markdown = cliref.expand_markers(markdown)
    markdown = SKIP.sub(lambda m: f"{m.group('indent')}*Not run by the docs tests: "
                                  f"{m.group('why')}*\n", markdown)
    return formulas.render(markdown)
