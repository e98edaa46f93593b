"""The written answers of a submission: found in the notebook, exported as a PDF for manual grading.

``assign`` tags each written question's prompt and answer cell (``metadata.nodelib``); a notebook whose tags were
lost (an editor that drops cell metadata) is read by otter's ``<!-- BEGIN QUESTION -->`` markers instead. The PDF is
drawn with matplotlib (a dependency of nodelib): no LaTeX, no browser, the same on every machine. Each question starts
a page, so a Gradescope outline can point at it; the text is shown as typed (Markdown and LaTeX source).
"""
from __future__ import annotations

import textwrap
from pathlib import Path


def _text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def written_answers(nb: dict, written: list[str]) -> dict[str, dict[str, str]]:
    """``{question: {"prompt": ..., "answer": ...}}`` for the written questions named in ``written``."""
    found: dict[str, dict[str, str]] = {}
    cells = [c for c in nb.get("cells", []) if isinstance(c, dict)]
    for cell in cells:
        tag = cell.get("metadata", {}).get("nodelib", {}) if isinstance(cell.get("metadata"), dict) else {}
        if not isinstance(tag, dict):
            continue
        for role in ("prompt", "answer"):
            name = tag.get(role)
            if name in written:
                entry = found.setdefault(name, {"prompt": "", "answer": ""})
                entry[role] = (entry[role] + "\n\n" + _text(cell)).strip()
    if len(found) == len(written):
        return found
    blocks, current = [], None  # otter's markers: the k-th marked block is the k-th written question
    for cell in cells:
        text = _text(cell)
        if cell.get("cell_type") == "markdown" and "<!-- BEGIN QUESTION -->" in text:
            current = [text.replace("<!-- BEGIN QUESTION -->", "").strip()]
            blocks.append(current)
        elif cell.get("cell_type") == "markdown" and "<!-- END QUESTION -->" in text:
            current = None
        elif current is not None and cell.get("cell_type") == "markdown":
            current.append(text.strip())
    for name, block in zip(written, blocks):
        found.setdefault(name, {"prompt": block[0], "answer": "\n\n".join(block[1:])})
    for name in written:
        found.setdefault(name, {"prompt": "", "answer": ""})
    return found


PLACEHOLDER = "_Type your answer here, replacing this text._"


def write_pdf(path: Path, title: str, answers: dict[str, dict[str, str]]) -> Path:
    """One or more A4 pages per written question: its prompt, then the student's answer."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    width, per_page = 95, 58

    def wrap(text: str) -> list[str]:
        lines: list[str] = []
        text = text.replace("\r", "").replace("<!-- BEGIN QUESTION -->", "").replace("<!-- END QUESTION -->", "")
        for paragraph in text.strip().split("\n\n"):
            rows = paragraph.split("\n")
            if any(r.lstrip().startswith(("- ", "* ", "|", "    ", "$$")) for r in rows):  # lists, tables, code: as typed
                for row in rows:
                    lines += textwrap.wrap(row, width, subsequent_indent="  ") or [""]
            else:
                lines += textwrap.wrap(" ".join(r.strip() for r in rows), width) or [""]
            lines.append("")
        return lines[:-1]

    path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(path) as pdf:
        for name, entry in answers.items():
            answer = entry["answer"].strip()
            if not answer or answer == PLACEHOLDER:
                answer = "(no answer)"
            lines = [f"{title}", f"Question {name}", ""] + wrap(entry["prompt"]) + ["", "Answer:", ""] + wrap(answer)
            for start in range(0, len(lines), per_page):
                fig = Figure(figsize=(8.27, 11.69))
                for row, line in enumerate(lines[start:start + per_page]):
                    bold = start == 0 and row < 2
                    fig.text(0.07, 0.95 - row * 0.0155, line.replace("$", r"\$"), fontsize=11 if bold else 9,
                             family="DejaVu Sans Mono", weight="bold" if bold else "normal", va="top")
                pdf.savefig(fig)
    return path
