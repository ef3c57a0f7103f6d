"""Tooling of lumos's documentation site and of the tests that keep it honest.

Nothing here ships in the wheel: it drives ``mkdocs build`` (:mod:`docsite.hooks`) and
``tests/docs`` (every code block executed, every tutorial run, every public name documented).

- :mod:`docsite.fences`: fenced code blocks of a page and the ``<!-- test: ... -->`` markers;
- :mod:`docsite.compare`: printed output against the output a page shows, numbers with a
  tolerance;
- :mod:`docsite.pages`: runs a page's blocks in order, as a reader would;
- :mod:`docsite.notebooks`: executes the tutorials (jupytext scripts) and renders them;
- :mod:`docsite.apiref`: the API reference, driven by each package's ``__all__``;
- :mod:`docsite.cliref`: the command-line reference, generated from the argparse parser;
- :mod:`docsite.formulas`: LaTeX turned into MathML at build time;
- :mod:`docsite.hooks`: the MkDocs hooks that tie them into the build.
"""
