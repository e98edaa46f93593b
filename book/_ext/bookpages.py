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
* Keyboard: formulas are not tab stops (MathJax's ``inTabOrder``), every control shows a focus ring (book.css),
  each solution's toggle is named by what it opens ("Solution to Exercise 6.2", book.js), and a collapsed code
  cell's toggle by its visible text.
* Phones: inline code breaks only after ``.``, ``_``, ``/``, ``,``, ``(`` or ``=`` (``<wbr>``), never inside a word;
  punctuation after inline math stays on the formula's line; printed outputs wrap inside their box and long
  ones are folded behind a "Show all N lines" button (book.js); figures open full size on a tap.
* Figures: numbered "Figure 6.2" (``numfig``); a figure cell's ``mystnb.figure`` metadata gives the caption and the
  name that ``{numref}`` refers to.
* Every element id is unique on its page (sphinx-exercise and sphinx-proof give their bodies one id).
* No general index (the book has no index entries; the theme linked an empty page).
* The PDF (``python3 tasks.py pdf``, in ``_build/pdf/``) is copied beside the website when it exists, where the
  download button and the link in "How to use" point.
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
PDF_NAME = "neural-odes-textbook.pdf"  # tools/pdf.py writes it; book.js and How to use link to it
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
    # Formulas out of the tab order: MathJax 3 makes every formula a tab stop for its accessibility menu (chapter 6
    # had 159 formulas before its first solution toggle); the menu stays available from the context menu.
    mathjax = dict(config.mathjax3_config or {})
    options = mathjax.setdefault("options", {})
    options.setdefault("menuOptions", {}).setdefault("settings", {})["inTabOrder"] = False
    config.mathjax3_config = mathjax
    # The book has no index entries: the theme's link to the general index led to an empty page.
    config.html_use_index = False
    # Figures and tables are numbered like the theorems and exercises: "Figure 6.2".
    config.numfig_format = {"figure": "Figure %s", "table": "Table %s", **(config.numfig_format or {})}
    # The solutions' toggles (sphinx-togglebutton) say what they do on screen; book.js names each for screen readers.
    config.togglebutton_hint = "Show solution"
    config.togglebutton_hint_hide = "Hide solution"
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


def unique_ids(app: Sphinx, doctree, docname: str) -> None:
    """sphinx-exercise and sphinx-proof give every exercise's, solution's and proof's body the same id
    ("exercise-content", "solution-content", "proof-content", "proof"): the second and later ones are numbered,
    so that each id occurs once on the page."""
    from docutils import nodes

    seen: dict[str, int] = {}
    for node in doctree.findall(nodes.Element):
        ids = node.get("ids", [])
        for k, id_ in enumerate(ids):
            seen[id_] = seen.get(id_, 0) + 1
            if seen[id_] > 1:
                ids[k] = f"{id_}-{seen[id_]}"


SOLUTION_TITLE = re.compile(r'(Solution to)(<a class="reference internal" href="[^"]*">) ')
INLINE_CODE = re.compile(r'(<code class="docutils literal notranslate">)(.*?)(</code>)', re.S)
PRE_SPAN = re.compile(r'(<span class="pre">)([^<]*)(</span>)')
# a break is allowed after these (identifiers, dotted names, paths, argument lists), never inside a word
CODE_BREAK = re.compile(r"(?<=[._/,(=])(?=[^\s._/,()=\]])")
INLINE_MATH = re.compile(r'(<span class="math notranslate nohighlight">[^<]*</span>)([.,;:!?)\]]+)')
HIDDEN_CELL_SUMMARY = '<summary aria-label="Toggle hidden content">'


def break_points(html: str) -> str:
    def in_code(m: re.Match) -> str:
        inner = PRE_SPAN.sub(lambda s: s[1] + CODE_BREAK.sub("<wbr>", s[2]) + s[3], m[2])
        return m[1] + inner + m[3]

    return INLINE_CODE.sub(in_code, html)


def punctuation_with_math(html: str) -> str:
    """'... of $x$.' keeps the full stop on the formula's line: both go into one unbreakable span."""
    return INLINE_MATH.sub(r'<span class="math-punct">\1\2</span>', html)


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
        body = SOLUTION_TITLE.sub(r"\1 \2", context["body"])
        body = punctuation_with_math(break_points(body))
        # a collapsed code cell's toggle is named by its visible text ("Show code cell content")
        context["body"] = body.replace(HIDDEN_CELL_SUMMARY, "<summary>")


def copy_pdf(app: Sphinx, exception: Exception | None) -> None:
    """The PDF made by `python3 tasks.py pdf` goes beside the website, where the download links point."""
    if exception is not None or app.builder.format != "html":
        return
    made = Path(app.srcdir) / "_build" / "pdf" / PDF_NAME
    if made.is_file() and Path(app.outdir).resolve() != made.parent.resolve():
        shutil.copy2(made, Path(app.outdir) / PDF_NAME)
        logger.info(f"the PDF ({made}) is copied beside the website")


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
    app.connect("config-inited", configure, priority=100)  # before sphinx-togglebutton reads its hints
    app.add_css_file("book.css")
    app.add_js_file("book.js", defer="defer")
    app.connect("doctree-read", remove_solutions)
    app.connect("doctree-resolved", unique_ids)
    app.connect("html-page-context", tidy_page)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", copy_pdf)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
