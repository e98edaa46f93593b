"""Sphinx extension: the ``{execution-status}`` directive, a table of how each chapter's outputs were made.

Every chapter notebook carries a record in its metadata (``nodelib_execution``), written by
``python3 tasks.py execute`` (tools/notebooks.py): when its committed outputs were produced, how long the run
took, on which machine, with which versions, and whether the notebook then passed under nbval. The book renders
those outputs without executing anything, so this table is what tells a reader where the numbers come from.
"""
from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
RECORD_KEY = "nodelib_execution"


def chapter_title(nb: dict, fallback: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


class ExecutionStatus(SphinxDirective):
    """Render a table of the execution records of the notebooks in the given folder (default: chapters)."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        folder = Path(self.env.srcdir) / (self.arguments[0] if self.arguments else "chapters")
        here = Path(self.env.doc2path(self.env.docname)).parent
        rows = [
            "| chapter | outputs made | run time | Python · torch · torchdiffeq · NumPy | machine and CPU path | nbval "
            "| nbval, other CPU path |",
            "|---|---|---|---|---|---|---|",
        ]
        for number, path in enumerate(sorted(folder.glob("[0-9][0-9]_*.ipynb")), start=1):
            nb = json.loads(path.read_text(encoding="utf-8"))
            self.env.note_dependency(str(path))
            title = chapter_title(nb, path.stem)
            link = f"[{number}. {title}]({Path('..' if here != Path(self.env.srcdir) else '.') / path.relative_to(self.env.srcdir)})"
            record = nb.get("metadata", {}).get(RECORD_KEY)
            if not record:
                logger.warning(f"{path.name} has no execution record; run: python3 tasks.py execute {path}", location=self.get_location())
                rows.append(f"| {link} | not recorded | | | | | |")
                continue
            versions = " · ".join(record.get(k, "?") for k in ("python", "torch", "torchdiffeq", "numpy"))
            rows.append(
                f"| {link} | {record.get('executed', '?')} | {record.get('seconds', '?')} s | {versions} "
                f"| {record.get('machine', '?')}; {record.get('cpu', 'CPU not recorded')} "
                f"| {record.get('nbval', 'not checked')} "
                f"| {record.get('nbval_other_path', 'not checked')} ({record.get('other_path', '?')}) |"
            )
        container = nodes.container(classes=["execution-status"])
        self.state.nested_parse(StringList(rows, source=self.get_source_info()[0]), self.content_offset, container)
        return [container]


def setup(app: Sphinx) -> dict:
    app.add_directive("execution-status", ExecutionStatus)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
