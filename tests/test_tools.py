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


def test_a_trailing_comment_no_longer_splits_a_statement():
    """ruff splits a statement that only a trailing comment makes too long (`with (` / `torch.no_grad()` /
    `):  # ...`); `format` puts such a comment on its own line first, and ruff joins the statement again."""
    comment = "# the coefficients are trainable parameters; nothing to differentiate here"
    split = f"with (\n    torch.no_grad()\n):  {comment}\n    z = odeint(f, z0, t)  # short\n"
    unsplit = f"with torch.no_grad():  {comment}\n    z = odeint(f, z0, t)  # short\n"
    for source in (split, unsplit):
        out = nbtool.ruff_format(nbtool.lift_trailing_comments(source))
        assert out == f"{comment}\nwith torch.no_grad():\n    z = odeint(f, z0, t)  # short", out
    kept = "x = f(a)  # noqa: E501 " + "x" * 80 + "\nitems = {  # a comment after an opening bracket stays\n    1: 2,\n}"
    assert nbtool.lift_trailing_comments(kept) == kept


def test_nbval_markers_become_cell_tags():
    cell = {"cell_type": "code", "metadata": {"tags": ["hide-input"]}, "outputs": [],
            "source": ["# NBVAL_CHECK_OUTPUT\n", "print(round(x, 3))\n", "# NBVAL_CHECK_OUTPUT is also a word"]}
    assert nbtool.compared_by_nbval(cell)
    assert nbtool.nbval_markers_to_tags(cell)
    assert cell["metadata"]["tags"] == ["hide-input", "nbval-check-output"]
    assert "".join(cell["source"]) == "print(round(x, 3))\n# NBVAL_CHECK_OUTPUT is also a word"
    assert nbtool.compared_by_nbval(cell) and not nbtool.nbval_markers_to_tags(cell)
    plain = {"cell_type": "code", "metadata": {}, "outputs": [], "source": "print(1)  # NBVAL_CHECK_OUTPUT"}
    assert not nbtool.compared_by_nbval(plain) and not nbtool.nbval_markers_to_tags(plain)


def _figure_cell(metadata: dict) -> dict:
    png = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}, "metadata": {}}
    return {"cell_type": "code", "metadata": metadata, "outputs": [png], "source": "plt.show()"}


def test_figures_without_names_lists_what_a_figure_cell_lacks():
    named = _figure_cell({"mystnb": {"figure": {"caption": "Euler's error.", "name": "fig-ch1-error"},
                                     "image": {"alt": "a line"}}})
    nameless = _figure_cell({"mystnb": {"image": {"alt": "a line"}}})
    badly = _figure_cell({"mystnb": {"figure": {"caption": "x", "name": "Figure 1"}}})
    hidden = _figure_cell({"tags": ["remove-output"]})
    nb = {"cells": [named, nameless, badly, hidden]}
    assert nbtool.figures_without_names(nb) == [
        "cell 1: no figure name (mystnb.figure.name)",
        "cell 1: no figure caption (mystnb.figure.caption)",
        "cell 2: figure name 'Figure 1' is not of the form fig-chN-what",
    ]


def test_format_tags_the_colab_cell_and_moves_markers(tmp_path, monkeypatch):
    colab = {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [],
             "source": 'import sys\nif "google.colab" in sys.modules:\n    pass\n'}
    checked = {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [],
               "source": "# NBVAL_CHECK_OUTPUT\nprint(1)"}
    path = tmp_path / "01_x.ipynb"
    path.write_text(json.dumps({"cells": [colab, checked], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert nbtool.format_notebook(path) == []
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["metadata"]["tags"] == [nbtool.COLAB_TAG]
    assert "".join(cells[0]["source"]) == nbtool.colab_cell_source()
    assert cells[1]["metadata"]["tags"] == ["nbval-check-output"] and "".join(cells[1]["source"]) == "print(1)"


def test_nbval_compares_a_tagged_cell_under_nbval_lax(tmp_path):
    """The tag is what nbval 0.11 reads: with --nbval-lax, a tagged cell whose stored output is wrong fails, and
    the same cell untagged passes."""
    import subprocess
    import sys

    def notebook(tags):
        cell = {"cell_type": "code", "execution_count": 1, "metadata": {"tags": tags}, "source": "print(1 + 1)",
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "3\n"}]}
        return {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}

    (tmp_path / "tagged.ipynb").write_text(json.dumps(notebook(["nbval-check-output"])))
    (tmp_path / "untagged.ipynb").write_text(json.dumps(notebook([])))
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p",
                             "no:cacheprovider", "-q", "-rA", "tagged.ipynb", "untagged.ipynb"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "FAILED tagged.ipynb" in result.stdout, result.stdout[-3000:]
    assert "PASSED untagged.ipynb" in result.stdout, result.stdout[-3000:]


def test_the_run_time_is_the_cells_own_time():
    import nbformat

    nb = nbformat.v4.new_notebook()
    for begin, end in (("10:00:00.000000", "10:00:02.500000"), ("10:05:00.000000", "10:05:01.000000")):
        cell = nbformat.v4.new_code_cell("pass")
        cell.metadata["execution"] = {"iopub.execute_input": f"2026-01-01T{begin}Z",
                                      "shell.execute_reply": f"2026-01-01T{end}Z"}
        nb.cells.append(cell)
    assert nbtool.kernel_seconds(nb) == pytest.approx(3.5), "the five minutes between the cells are not counted"


def _tasks():
    spec = importlib.util.spec_from_file_location("tasks_module", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lab_runs_as_root_and_reads_the_data_root_beside_the_clone(monkeypatch):
    tasks = _tasks()
    monkeypatch.setattr(tasks.os, "geteuid", lambda: 0, raising=False)
    assert "--allow-root" in [str(c) for c in tasks.lab_command([])], "JupyterLab refuses to start as root without it"
    assert [str(c) for c in tasks.lab_command(["--allow-root"])].count("--allow-root") == 1
    monkeypatch.setattr(tasks.os, "geteuid", lambda: 1000, raising=False)
    assert "--allow-root" not in [str(c) for c in tasks.lab_command([])]
    shared = ROOT.parent / "shared" / "data"
    env = tasks.with_data_root({})
    assert env.get("NODELIB_DATA") == (str(shared) if shared.is_dir() else None)
    assert tasks.with_data_root({"NODELIB_DATA": "/elsewhere"})["NODELIB_DATA"] == "/elsewhere"


def test_downloaded_data_is_never_tracked():
    """The loaders' default root is ./data wherever the code runs: the repository, chapters/ (JupyterLab's kernel),
    assignments/. git ignores a data folder in each."""
    import subprocess

    paths = ["data/physionet2012/set-a.tar.gz", "chapters/data/physionet2012/Outcomes-a.txt",
             "assignments/data/FashionMNIST/raw/x", "nodelib/data.py"]
    result = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == paths[:3], result.stdout


def _strings(cmd) -> list[str]:
    return [str(c) for c in cmd]


def test_the_fast_loop_leaves_out_the_slow_parts_and_passes_the_rest_to_pytest():
    tasks = _tasks()
    fast = _strings(tasks.test_command(["--fast", "-k", "solvers"]))
    assert "--fast" not in fast and fast[-2:] == ["-k", "solvers"], "the arguments after --fast go to pytest, last"
    assert ("-m", "not slow") in set(zip(fast, fast[1:])), "the slow tests are left out"
    assert "tests" in fast and "chapters" not in fast, "no notebook under nbval"
    left_out = {a.removeprefix("--ignore=") for a in fast if a.startswith("--ignore=")}
    assert left_out == {"tests/test_notebooks.py", "tests/test_book.py", "tests/test_browser.py", "tests/test_pdf.py",
                        "tests/test_assignments.py"}
    assert all((ROOT / path).is_file() for path in left_out), "a renamed file would silently come back into the loop"
    assert fast[fast.index("-n") + 1] == "auto" and fast[fast.index("--dist") + 1] == "loadfile"
    full = _strings(tasks.test_command(["-x"]))
    assert full[-1] == "-x" and ("-m", "not slow") not in set(zip(full, full[1:]))
    assert not any(a.startswith("--ignore") for a in full)
    assert full[full.index("--dist") + 1] == "loadfile", "a notebook's cells in one kernel; the root conftest.py's units"


def _root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_test_file_that_reads_the_built_book_runs_in_the_books_worker():
    """Under xdist a session fixture is built once per worker: the files that take ``built_book`` are one unit."""
    import re

    root_conftest = _root_conftest()
    uses = re.compile(r"def \w+\([^)]*\bbuilt_book\b")
    assert set(root_conftest.BOOK_TESTS) == {p.name for p in (ROOT / "tests").glob("test_*.py")
                                             if uses.search(p.read_text(encoding="utf-8"))}
    unit = root_conftest.work_unit
    assert unit("tests/test_pdf.py::test_x[a::b]") == unit("tests/test_book.py::test_y") == "built book"
    assert unit("chapters/07_anodev2.ipynb::Cell 3") == unit("chapters/07_anodev2.ipynb::Cell 30")
    assert unit("chapters/07_anodev2.ipynb::Cell 3") != unit("chapters/08_neural_gode.ipynb::Cell 3")
    assert unit("tests/test_solvers.py::test_a[x]") == "tests/test_solvers.py"
    a, b = (f"tests/test_cpu_paths.py::test_checked_cells_match_on_another_cpu_path[{c}]" for c in ("01", "02"))
    assert unit(a) == a and unit(a) != unit(b)  # each chapter's run on the other CPU path is a job of its own


@pytest.mark.slow
def test_a_notebooks_cells_share_one_process_under_xdist(tmp_path):
    """The failure this prevents: with the cells shared among processes, a cell ran in a fresh kernel (NameError).
    A notebook whose every cell needs the one before runs under ``-n 2`` with the repository's scheduling."""
    import subprocess
    import sys

    import nbformat

    cells = [nbformat.v4.new_code_cell("x = 0")]
    cells += [nbformat.v4.new_code_cell(f"assert x == {k}\nx += 1") for k in range(12)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "chained.ipynb")
    (tmp_path / "test_other.py").write_text("def test_one():\n    pass\n\n\ndef test_two():\n    pass\n")
    (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p",
                           "no:cacheprovider", "-n", "2", "--dist", "loadfile", "-q", "chained.ipynb", "test_other.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "15 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_cpu_torch_installs_torch_from_pytorchs_cpu_index_first(monkeypatch, tmp_path):
    tasks = _tasks()
    monkeypatch.delenv("NODELIB_TORCH", raising=False)
    assert not tasks.cpu_torch()
    monkeypatch.setenv("NODELIB_TORCH", "cuda")
    with pytest.raises(SystemExit, match="the only choice is 'cpu'"):
        tasks.cpu_torch()
    monkeypatch.setenv("NODELIB_TORCH", "cpu")
    assert tasks.cpu_torch()
    cpu_index = "https://download.pytorch.org/whl/cpu"
    test = _strings(tasks.cpu_torch_command("test"))
    assert test[-2:] == ["--index-url", cpu_index] and {"torch>=2.1", "torchvision>=0.16"} <= set(test), test
    lab = _strings(tasks.cpu_torch_command("lab"))
    assert "torch>=2.1" in lab and not any(a.startswith("torchvision") for a in lab), "torchvision only with experiments"
    # a fresh environment: torch from the CPU index, then nodelib, which finds torch satisfied; then a stamp
    monkeypatch.setattr(tasks, "VENV", tmp_path)
    monkeypatch.setattr(tasks, "PYTHON", tmp_path / "python")
    (tmp_path / "python").touch()
    commands = []
    monkeypatch.setattr(tasks, "run", lambda cmd, **kwargs: commands.append(_strings(cmd)))
    monkeypatch.setattr(tasks, "installed_torch", lambda: None)
    tasks.ensure_env("test")
    assert commands[0][-2:] == ["--index-url", cpu_index] and "--editable" in commands[1] and len(commands) == 2
    assert [p.name for p in tmp_path.glob(".installed-test-*")][0].endswith("-cpu")
    tasks.ensure_env("test")
    assert len(commands) == 2, "installed once"
    # an environment that already has CUDA's torch is not silently kept
    for stamp in tmp_path.glob(".installed-*"):
        stamp.unlink()
    monkeypatch.setattr(tasks, "installed_torch", lambda: "2.5.1+cu124")
    monkeypatch.setattr(tasks.sys, "platform", "linux")
    with pytest.raises(SystemExit, match="not the CPU-only build"):
        tasks.ensure_env("test")
