"""The PDF is a book: title page, contents with page numbers, bookmarks, metadata, links that stay inside it.

Printed from the test build (``built_book``) by the same code as ``python3 tasks.py pdf`` (tools/pdf.py), with the
system's Chromium (skipped, saying so, without one); about a minute on a 2-core machine.
"""
from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT, load_tool

pytestmark = pytest.mark.slow
pdf_tool = load_tool("pdf")
WEB_ONLY = ["Hide code cell", "Show code cell", "Click to show", "Click to hide", "Show solution", "Hide solution",
            "Toggle hidden content", "Show all", "Copy to clipboard", "google.colab"]


@pytest.fixture(scope="module")
def printed(built_book, tmp_path_factory):
    if load_tool("browser").chromium_path() is None:
        pytest.skip("the PDF is printed by Chromium; none found (.ci/run installs Debian's chromium)")
    pytest.importorskip("pypdf", reason="pip install pypdf (the test extra)")
    target = tmp_path_factory.mktemp("pdf") / pdf_tool.PDF_NAME
    report = pdf_tool.make_pdf(built_book, target)
    assert not (built_book / "chapters" / pdf_tool.COMBINED).exists(), "the printed page is removed afterwards"
    return target, report, pdf_tool.pdf_text(target)


def test_the_pdf_opens_with_a_title_page_and_contents(printed):
    _, report, pages = printed
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert report["pages"] > 150
    assert report["title"] == config["title"] and report["author"] == config["author"], "the PDF's metadata"
    title = re.sub(r"\s+", " ", pages[0])
    assert config["title"] in title and config["author"] in title and len(title) < 400, "a title page"
    contents = "\n".join(pages[1:3])
    assert pages[1].lstrip().startswith("Contents")
    # every chapter is listed with the page it starts on, and that page begins with the chapter's title
    listed = re.findall(r"^(\d)\. (.+?) (\d+)$", contents, flags=re.M)
    assert [int(n) for n, _, _ in listed] == list(range(1, 9)), listed
    for number, name, page in listed:
        assert f"{number}. {name.split()[0]}" in pages[int(page) - 1], f"chapter {number} is not on page {page}"


def test_the_pdf_has_bookmarks_and_its_links_stay_inside_it(printed):
    _, report, _ = printed
    assert report["outline_depth"] >= 3, "bookmarks: parts, their pages, the chapters' sections"
    assert not report["local_links"], f"links to the server that printed the PDF: {report['local_links'][:3]}"
    assert not report["broken_links"], f"links to places not in the PDF: {report['broken_links'][:3]}"
    assert report["internal_links"] > 200, "cross-references, citations and the contents link inside the PDF"
    assert all(u.startswith("https://") for u in report["web_links"]), report["web_links"]


def test_the_pdf_has_no_web_only_labels(printed):
    _, _, pages = printed
    text = "\n".join(pages)
    found = {label: text.count(label) for label in WEB_ONLY if label in text}
    assert not found, f"labels of the web page printed in the PDF: {found}"
