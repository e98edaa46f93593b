"""Sphinx extension: refuse to render a chapter notebook that was committed broken.

The book renders the outputs stored in each notebook and does not execute it, so a notebook saved after
an exception, or with cells never run, would render silently wrong. This extension warns for each such
notebook; the test build runs with warnings as errors (``-W``), which turns the warning into a failure.
"""
from __future__ import annotations

import json
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


def problems(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or not "".join(cell.get("source", "")).strip():
            continue
        if cell.get("execution_count") is None:
            found.append(f"code cell {index} was never executed")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"code cell {index} raised {out.get('ename')}: {out.get('evalue')}")
    return found


def check_notebooks(app: Sphinx, env, docnames: list[str]) -> None:
    for docname in docnames:
        path = Path(env.doc2path(docname))
        if path.suffix != ".ipynb":
            continue
        for problem in problems(path):
            logger.warning(f"{problem}; re-run the notebook top to bottom and save it", location=docname)


def setup(app: Sphinx) -> dict:
    app.connect("env-before-read-docs", check_notebooks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
