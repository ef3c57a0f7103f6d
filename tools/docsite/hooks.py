"""MkDocs hooks of lumos's site (``hooks:`` in mkdocs.yml).

- every tutorial script ``docs/tutorials/NAME.py`` becomes the page ``tutorials/NAME.md`` with
  its outputs (executed once, then reused while neither the script nor lumos changed), plus the
  executed notebook ``tutorials/NAME.ipynb`` to download;
- ``<!-- api: PACKAGE -->`` and ``<!-- cli-reference -->`` are expanded;
- ``<!-- test: skip REASON -->`` shows its reason on the page;
- ``$...$`` and ``$$...$$`` become MathML;
- Sphinx roles left in docstrings (``:func:`x` ``) show as plain code (``~a.b.C`` as ``C``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docsite import apiref, cliref, formulas, notebooks

ROLE = re.compile(r":(?:mod|class|func|meth|data|attr|obj|exc):(<code>)(~?)([\w.]+)(</code>)")
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


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Drop the Sphinx roles that docstrings written for both tools carry."""
    return ROLE.sub(lambda m: m.group(1) + (m.group(3).rsplit(".", 1)[-1] if m.group(2)
                                            else m.group(3)) + m.group(4), html)
