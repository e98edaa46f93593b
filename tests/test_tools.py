"""The book's maintenance tools (tools/notebooks.py, tools/pdf.py) do what their commands promise."""
from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import ROOT, load_tool

nbtool = load_tool("notebooks")


@pytest.mark.parametrize("line", [
    '    f"{name:20s} accuracy {recall * counts / (counts + 1):6.1%}   balanced accuracy {max(recall, 0.25):6.1%}"',
    '        "a plain string with many words that goes on and on past the end of the rendered column, twice over",',
])
def test_a_long_string_is_split_without_changing_its_value(line):
    pieces = nbtool.split_string_line(line)
    assert pieces and all(len(p) <= nbtool.LINE_LENGTH for p in pieces)
    # the pieces are implicitly concatenated literals: evaluating both gives the same string
    env = {"name": "x", "recall": 0.5, "counts": 2.0}
    original = eval("(" + line.strip().rstrip(",") + ")", env)
    joined = eval("(" + "\n".join(p.strip() for p in pieces).rstrip(",") + ")", env)
    assert joined == original


def test_a_brace_expression_is_never_split():
    line = '    f"{estimate_order([1 / n for n in depths], depth_errors, and_a_very_long_keyword=1):.1f} is the order"'
    pieces = nbtool.split_string_line(line) or []
    for piece in pieces:
        assert piece.count("{") == piece.count("}")


def test_comments_are_wrapped_and_code_is_formatted():
    source = "x=1 # short\n# " + "word " * 30 + "\nprint( x )"
    out = nbtool.wrap_long_lines(nbtool.ruff_format(source))
    assert all(len(line) <= nbtool.LINE_LENGTH for line in out.splitlines())
    assert "print(x)" in out and out.count("# word") == 2


def test_widget_state_and_widget_outputs_are_stripped():
    view = {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {}, "text/plain": ""}}
    text = {"output_type": "stream", "name": "stdout", "text": "kept"}
    nb = {"metadata": {"widgets": {"state": {}}}, "cells": [{"cell_type": "code", "outputs": [view, text]}]}
    assert nbtool.strip_widgets(nb) == 1
    assert "widgets" not in nb["metadata"] and nb["cells"][0]["outputs"] == [text]


def test_the_colab_cell_comes_from_the_repository_url_in_the_config():
    url, branch = nbtool.repository()
    cell = nbtool.colab_cell_source()
    assert f"git+{url}@{branch}" in cell
    assert all(len(line) <= nbtool.LINE_LENGTH for line in cell.splitlines())
    compile(cell, "colab", "exec")


def test_pdf_page_count_reads_the_page_tree(tmp_path):
    pdf = load_tool("pdf")
    path = tmp_path / "x.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Pages /Kids [3 0 R] /Count 12 >> endobj\n%%EOF")
    assert pdf.pdf_pages(path) == 12


def test_the_execution_record_is_what_the_status_page_reads():
    spec = importlib.util.spec_from_file_location("execstatus", ROOT / "book" / "_ext" / "execstatus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.RECORD_KEY == nbtool.RECORD_KEY
    nb = json.loads((ROOT / "chapters" / "01_resnets_are_euler_steps.ipynb").read_text())
    assert module.chapter_title(nb, "?").startswith("ResNets")
