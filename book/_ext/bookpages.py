"""Sphinx extension: the book's pages work offline, on phones and in print.

* MathJax is served from the book's own ``_static/mathjax`` (copied from the ``django-static-mathjax``
  package, MathJax 3.2), so formulas typeset with no network access (a course network, an offline laptop).
* ``_static/book.css`` and ``_static/book.js``: displayed equations and code scroll inside their box instead of
  being clipped; the ☰ buttons open the sidebars on narrow screens (pydata-sphinx-theme 0.17 binds the click
  to a hidden duplicate button: pydata-sphinx-theme#2451, sphinx-book-theme#988).
* Scripts that a page would declare twice (sphinx-thebe's inline configuration) are declared once.
* "Solution to Exercise 1.1": the space before the link is moved out of the underlined link text.
* ``hide_solutions: true`` removes each solution whole, gated notebook solutions included.
* Citations: the bibliography's labels read "Chen et al., 2018", as the in-text citations do.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent.parent / "_static"
MATHJAX_ENTRY = "mathjax/tex-mml-chtml.js"
# What tex-mml-chtml.js loads on demand: TeX extensions, fonts, the accessibility menu and its speech engine.
MATHJAX_PARTS = ["tex-mml-chtml.js", "input", "output", "a11y", "sre", "ui", "adaptors", "latest.js"]


def mathjax_source() -> Path:
    """The es5 folder of the MathJax 3 copy installed with the book's dependencies."""
    try:
        import mathjax  # the django-static-mathjax distribution; no Django needed to read its files
    except ImportError as err:
        raise ExtensionError(
            "the book serves MathJax itself and needs the 'django-static-mathjax' package: "
            "pip install 'nodelib[book]' (or python3 tasks.py book)"
        ) from err
    es5 = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise ExtensionError(f"MathJax's tex-mml-chtml.js is missing from {es5}; reinstall django-static-mathjax")
    return es5


def configure(app: Sphinx, config) -> None:
    mathjax_source()  # fail early, with the fix in the message
    # sphinx-exercise's own hide_solutions drops {solution-start} but keeps {solution-end} and everything between
    # them (a notebook's solution cells), and then fails on the orphaned end node. The book builds its solutions
    # as usual and removes the finished solution nodes, content and all (remove_solutions below).
    app.book_hide_solutions = bool(config.hide_solutions)  # type: ignore[attr-defined]
    config.hide_solutions = False
    config.mathjax_path = MATHJAX_ENTRY
    config.html_static_path = [*config.html_static_path, str(STATIC)]
    # pydata-sphinx-theme reads the colour mode from html_context; left empty it logs a console error on
    # every page ("Got invalid theme mode"). "auto" follows the reader's system setting.
    config.html_context = {"default_mode": "auto", **(config.html_context or {})}
    if not config.html_favicon:
        config.html_favicon = str(STATIC / "favicon.svg")


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        src = source / part
        if src.is_dir():
            shutil.copytree(src, target / part, dirs_exist_ok=True)
        elif src.is_file():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / part)


def remove_solutions(app: Sphinx, doctree) -> None:
    if not getattr(app, "book_hide_solutions", False):
        return
    from sphinx_exercise.nodes import solution_node

    for node in list(doctree.findall(solution_node)):
        node.parent.remove(node)


SOLUTION_TITLE = re.compile(r'(Solution to)(<a class="reference internal" href="[^"]*">) ')


def tidy_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts, seen = [], set()
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", None) or "", attributes.get("body"), attributes.get("src"))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"] = scripts
    if "body" in context:
        context["body"] = SOLUTION_TITLE.sub(r"\1 \2", context["body"])


def register_citation_style() -> None:
    """A pybtex style whose labels are 'Author et al., year', matching sphinxcontrib-bibtex's author_year."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle

    def surname(person) -> str:
        return " ".join(person.prelast_names + person.last_names).replace("{", "").replace("}", "")

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            for entry in sorted_entries:
                people = entry.persons.get("author") or entry.persons.get("editor") or []
                year = entry.fields.get("year", "n.d.")
                if not people:
                    name = entry.fields.get("title", entry.key).split(":")[0]
                elif len(people) == 1:
                    name = surname(people[0])
                elif len(people) == 2:
                    name = f"{surname(people[0])} and {surname(people[1])}"
                else:
                    name = f"{surname(people[0])} et al."
                yield f"{name}, {year}"

    class BookStyle(UnsrtStyle):
        default_label_style = "book_author_year"
        default_sorting_style = "author_year_title"

    register_plugin("pybtex.style.labels", "book_author_year", AuthorYearLabels, force=True)
    register_plugin("pybtex.style.formatting", "book", BookStyle, force=True)


def setup(app: Sphinx) -> dict:
    register_citation_style()
    app.connect("config-inited", configure)
    app.add_css_file("book.css")
    app.add_js_file("book.js", defer="defer")
    app.connect("doctree-read", remove_solutions)
    app.connect("html-page-context", tidy_page)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
