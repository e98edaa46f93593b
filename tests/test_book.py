"""The book builds with warnings as errors, renders the committed outputs, and refuses a broken notebook."""
from __future__ import annotations

import importlib.util
import json
import re

import pytest

from conftest import ROOT, build, load_tool


@pytest.mark.slow
def test_chapter_one_renders_its_parts(built_book):
    html = (built_book / "chapters" / "01_resnets_are_euler_steps.html").read_text(encoding="utf-8")
    assert html.count("<img") >= 6, "figures from the committed outputs"
    assert 'class="eqno"' in html, "numbered equations"
    assert 'class="proof' in html, "definitions, theorems and proofs"
    assert html.count('class="exercise') >= 4 and html.count('class="solution') >= 4
    assert "colab.research.google.com" in html and "mybinder.org" in html, "launch buttons"
    assert "../book/bibliography.html#" in html, "citations link to the bibliography"


@pytest.mark.slow
def test_chapter_two_renders_its_parts(built_book):
    html = (built_book / "chapters" / "02_the_adjoint_method.html").read_text(encoding="utf-8")
    assert html.count("<img") >= 4
    assert html.count('class="proof') >= 6, "lemma, theorems, proofs, algorithm"
    assert "Algorithm 2.1" in html
    assert re.search(r'class="(warning admonition|admonition warning)"', html), "the warning about a sign in the sources"
    assert html.count('class="exercise') >= 4 and html.count('class="solution') >= 4


@pytest.mark.slow
def test_chapter_five_renders_its_parts(built_book):
    html = (built_book / "chapters" / "05_odenets_for_classification.html").read_text(encoding="utf-8")
    assert html.count("<img") >= 6, "digits, curves, flow, beats, confusion, throughput, static widget figure"
    assert "182,853" in html and "59,333" in html, "the parameter counts of Facci & Zurlo, from the executed cells"
    assert 'id="prop-ch5-params"' in html and 'class="proof' in html
    assert html.count('class="exercise') >= 4 and html.count('class="solution') >= 4
    assert "python -m nodelib.experiments" in html


def test_chapter_six_renders_its_parts(built_book):
    html = (built_book / "chapters" / "06_ace_node.html").read_text(encoding="utf-8")
    assert html.count("<img") >= 5, "accuracies, attention mask, attention heat maps, full runs"
    assert "320,010" in html and "321,162" in html, "the ACE-ODE-Net's parameter counts, from the executed cells"
    tables = html.split("<table")[1:]
    assert any("verdict" in t[:2000] for t in tables), "the claims table, displayed as Markdown, renders as a table"
    assert html.count('class="exercise') >= 4 and html.count('class="solution') >= 4
    assert 'id="equation-eq-ch6-adjoint"' in html


def test_chapter_seven_renders_its_parts(built_book):
    html = (built_book / "chapters" / "07_anodev2.html").read_text(encoding="utf-8")
    assert html.count("<img") >= 6, "RDA terms, Eq. 8 vs Eq. 13, live accuracies, kernels, recorded runs"
    assert "1,756,682" in html and "44,186" in html, "Table 3's baseline counts, from the executed cells"
    assert "verdict" in html and html.count("<table") >= 2, "the open-choices table and the claims table"
    assert "does not hold" in html, "Eq. 13 is not Eq. 8, in the claims table"
    assert html.count('class="exercise') >= 4 and html.count('class="solution') >= 4
    assert 'id="equation-eq-ch7-adjoint"' in html and 'id="equation-eq-ch7-eq13"' in html


def test_chapter_eight_renders_its_parts(built_book):
    html = (built_book / "chapters" / "08_neural_gode.html").read_text(encoding="utf-8")
    assert html.count("<img") >= 6, "bases, penalty path, length of stay, recorded runs, kernels, knots x degree"
    assert "428,042" in html and "724,106" in html, "Table 1's parameter counts, from the executed cells"
    assert "verdict" in html and html.count("<table") >= 4, "families, variants, open choices and claims tables"
    assert html.count('class="exercise') >= 4 and html.count('class="solution') >= 4
    assert 'id="equation-eq-ch8-gode"' in html and 'id="equation-eq-ch8-coxdeboor"' in html


@pytest.mark.slow
def test_front_matter_is_built(built_book):
    for page in ["intro", "how_to_use", "teaching", "notation", "bibliography", "execution_status"]:
        assert (built_book / "book" / f"{page}.html").exists()
    bib = (built_book / "book" / "bibliography.html").read_text(encoding="utf-8")
    for author in ["Jhin", "Zhang", "Yu", "Capell", "Facci"]:  # the five seed papers
        assert author in bib


def _nbcheck():
    spec = importlib.util.spec_from_file_location("nbcheck", ROOT / "book" / "_ext" / "nbcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(outputs, execution_count=1) -> dict:
    cell = {"cell_type": "code", "execution_count": execution_count, "metadata": {}, "outputs": outputs, "source": "1/0"}
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Broken"}, cell],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


ERROR = {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": []}


def test_nbcheck_finds_errors_and_unexecuted_cells(tmp_path):
    nbcheck = _nbcheck()
    broken = tmp_path / "broken.ipynb"
    broken.write_text(json.dumps(_notebook([ERROR])))
    assert nbcheck.problems(broken) == ["code cell 1 raised ZeroDivisionError: division by zero"]
    broken.write_text(json.dumps(_notebook([], execution_count=None)))
    assert nbcheck.problems(broken) == ["code cell 1 was never executed"]
    fine = tmp_path / "fine.ipynb"
    fine.write_text(json.dumps(_notebook([{"output_type": "stream", "name": "stdout", "text": "ok"}])))
    assert nbcheck.problems(fine) == []


@pytest.mark.slow
def test_a_notebook_committed_with_an_error_fails_the_build(tmp_path):
    book = tmp_path / "mini"
    book.mkdir()
    (book / "_toc.yml").write_text("format: jb-book\nroot: broken\n")
    (book / "_config.yml").write_text(
        "title: mini\nexecute:\n  execute_notebooks: 'off'\n"
        f"sphinx:\n  local_extensions:\n    nbcheck: {ROOT / 'book' / '_ext'}\n"
    )
    (book / "broken.ipynb").write_text(json.dumps(_notebook([ERROR])))
    result = build(book, tmp_path / "out")
    assert result.returncode != 0
    assert "raised ZeroDivisionError" in result.stdout + result.stderr


@pytest.mark.slow
def test_no_unrendered_math_in_any_chapter(built_book):
    """A '$' left in the prose means MyST did not recognise some math (as happened with $$ inside paragraphs)."""
    for page in sorted((built_book / "chapters").glob("*.html")):
        html = page.read_text(encoding="utf-8")
        for pattern in (r"<script.*?</script>", r"<pre.*?</pre>", r'<div class="highlight.*?</div>'):
            html = re.sub(pattern, "", html, flags=re.S)
        stray = [html[max(0, m.start() - 60) : m.start() + 20] for m in re.finditer(r"(?<!\\)\$", html)]
        assert not stray, f"{page.name}: unrendered math near {stray[:3]}"


def test_exercise_references_are_not_doubled(built_book):
    # {ref} to an exercise renders as "Exercise 5.2": a text that says "Exercise" before it reads it twice
    for page in sorted((built_book / "chapters").glob("*.html")):
        text = re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))
        assert not re.search(r"Exercise\s+Exercise", text), f"'Exercise Exercise' in {page.name}"


def test_bibliography_labels_match_the_author_year_citations(built_book):
    bib = (built_book / "book" / "bibliography.html").read_text(encoding="utf-8")
    labels = re.findall(r'<span class="label"><span class="fn-bracket">\[</span>([^<]*)', bib)
    assert len(labels) >= 20
    assert all(re.fullmatch(r"[^\d]+, (\d{4}|n\.d\.)", label) for label in labels), labels
    sources, _, others = bib.partition('<section id="other-works-cited">')
    for name in ("Capell et al., 2023", "Facci and Zurlo, 2022", "Jhin et al., 2021", "Zhang et al., 2019",
                 "Yu et al., 2022"):
        assert name in sources and name not in others, f"{name} belongs under the book's sources"
    assert "Chen et al., 2018" in others


def test_pages_are_tidy(built_book):
    """One THEBE_JS_URL declaration, a favicon, and no underlined space before 'Exercise' in solution titles."""
    page = (built_book / "chapters" / "01_resnets_are_euler_steps.html").read_text(encoding="utf-8")
    assert page.count("const THEBE_JS_URL") == 1
    assert 'rel="icon"' in page and (built_book / "_static" / "favicon.svg").exists()
    assert "Solution to<a" not in page and '"> Exercise' not in page
    assert "Solution to <a" in page


def test_the_execution_status_page_lists_every_chapter(built_book):
    html = (built_book / "book" / "execution_status.html").read_text(encoding="utf-8")
    for path in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")):
        assert f"{path.stem}.html" in html, f"{path.name} missing from the execution-status page"
    assert html.count("passed (") >= 8 and "torch" in html


def test_hide_solutions_removes_every_solution_whole(tmp_path):
    """The instructors' switch: no solution title, text or code cell is left (sphinx-exercise alone keeps the
    cells between {solution-start} and {solution-end}, then fails on the orphaned end)."""
    html = load_tool("pdf").build_site(solutions=False, out=tmp_path / "out", strict=True) / "chapters"
    for page in sorted(html.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        assert 'class="exercise' in text, f"{page.name}: the exercises stay"
        assert "Solution to" not in text and 'class="solution' not in text, f"{page.name}: a solution is left"
    chapter1 = (html / "01_resnets_are_euler_steps.html").read_text(encoding="utf-8")
    assert "measured slope confirms it" not in chapter1, "the text of a gated solution"


def test_the_pdf_is_copied_beside_the_website_when_it_exists(tmp_path):
    """The download button and How to use link to neural-odes-textbook.pdf beside the website: a build copies the
    PDF that `python3 tasks.py pdf` made, and copies nothing when there is none."""
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("bookpages", ROOT / "book" / "_ext" / "bookpages.py")
    bookpages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bookpages)
    out = tmp_path / "_build" / "html"
    out.mkdir(parents=True)
    app = SimpleNamespace(srcdir=str(tmp_path), outdir=str(out), builder=SimpleNamespace(format="html"))
    bookpages.copy_pdf(app, None)
    assert not (out / bookpages.PDF_NAME).exists()
    made = tmp_path / "_build" / "pdf" / bookpages.PDF_NAME
    made.parent.mkdir(parents=True)
    made.write_bytes(b"%PDF-1.4 a book")
    bookpages.copy_pdf(app, None)
    assert (out / bookpages.PDF_NAME).read_bytes() == b"%PDF-1.4 a book"
    assert bookpages.PDF_NAME == load_tool("pdf").PDF_NAME
