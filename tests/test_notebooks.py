"""Every chapter notebook is committed ready to render and to run: in the book, in JupyterLab, on Colab.

nbval (run by the same test command) executes the notebooks; these checks read the committed files.
"""
from __future__ import annotations

import re

import pytest
import yaml

from conftest import CHAPTERS, ROOT, load_notebook, load_tool

ABSOLUTE_PATH = re.compile(r"(/work/|/tmp/|/root/|/home/\w+/|/Users/\w+/|[A-Z]:\\\\Users)")
CHAPTER_IDS = [p.stem for p in CHAPTERS]


def source(cell) -> str:
    return "".join(cell.get("source", ""))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and source(c).strip()]


def markdown(nb) -> str:
    return "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def test_there_are_chapters():
    assert CHAPTERS, "no notebooks under chapters/"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_first_code_cell_sets_up_colab_from_this_repository(path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    first = source(code_cells(load_notebook(path))[0])
    assert 'if "google.colab" in sys.modules' in first
    assert f"git+{config['repository']['url']}@{config['repository']['branch']}" in first
    assert first == notebooks_tool().colab_cell_source(), "run `python3 tasks.py format` to refresh the Colab cell"


def notebooks_tool():
    return load_tool("notebooks")


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_code_fits_the_rendered_column(path):
    """The book's code column shows 88 characters; wider lines are cut off on the page and in print."""
    limit = notebooks_tool().LINE_LENGTH
    long = [(i, line) for i, cell in enumerate(load_notebook(path)["cells"]) if cell["cell_type"] == "code"
            for line in source(cell).splitlines() if len(line) > limit]
    assert not long, f"{len(long)} code lines over {limit} characters (python3 tasks.py format): {long[:3]}"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_no_widget_state_is_committed(path):
    """A widget without its kernel is a blank gap or a dead control in the book, and loads ~1 MB from a CDN."""
    nb = load_notebook(path)
    assert "widgets" not in nb["metadata"], "widget state in the notebook metadata (python3 tasks.py execute)"
    views = [i for i, c in enumerate(nb["cells"]) for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not views, f"widget outputs in cells {views}"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_outputs_have_an_execution_record(path):
    """The execution-status page reads these: when, how long, which versions, nbval's verdict."""
    record = load_notebook(path)["metadata"].get("nodelib_execution")
    assert record, "no execution record: python3 tasks.py execute " + str(path.relative_to(ROOT))
    for key in ("executed", "seconds", "machine", "python", "torch", "torchdiffeq", "numpy", "nbval"):
        assert key in record, f"execution record lacks {key}"
    assert record["nbval"].startswith("passed"), f"committed after nbval reported {record['nbval']}"
    assert 0 < record["seconds"] < 180, f"the chapter ran {record['seconds']} s; the budget is about 90 s"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_every_figure_has_alt_text(path):
    nb = load_notebook(path)
    for index, cell in enumerate(nb["cells"]):
        shown = "remove-output" not in cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "code" and shown and any("image/png" in o.get("data", {}) for o in cell["outputs"]):
            alt = cell["metadata"].get("mystnb", {}).get("image", {}).get("alt", "")
            assert len(alt) > 30, f"cell {index}: a figure without alt text (metadata mystnb.image.alt)"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_every_figure_is_a_numbered_figure(path):
    """The text refers to figures by number ({numref}), so every figure needs a name and a caption."""
    problems = load_tool("notebooks").figures_without_names(load_notebook(path))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_executed_top_to_bottom_without_errors(path):
    cells = code_cells(load_notebook(path))
    counts = [c.get("execution_count") for c in cells]
    assert None not in counts, "some code cells were never executed: the book renders committed outputs"
    assert counts == list(range(1, len(cells) + 1)), "execution counts are not 1..n: run 'Restart & Run All'"
    for c in cells:
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"a cell raised {out.get('ename')}: {source(c)[:80]!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_every_glue_key_is_glued_once(path):
    """myst-nb fails the book build (warnings are errors) on a key glued twice; say so here, in a second."""
    names: dict[str, int] = {}
    for c in code_cells(load_notebook(path)):
        for out in c.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                names[name] = names.get(name, 0) + 1
    twice = sorted(name for name, n in names.items() if n > 1)
    assert not twice, f"glued more than once (each glue key needs one value): {twice}"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_no_absolute_paths_of_this_machine(path):
    text = path.read_text(encoding="utf-8")
    match = ABSOLUTE_PATH.search(text)
    assert match is None, f"absolute path {match.group(0)!r} in {path.name}"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_has_the_book_shape(path):
    text = markdown(load_notebook(path))
    for heading in ("## Learning goals", "## Summary", "## Exercises"):
        assert heading in text, f"missing section {heading!r}"
    exercises = re.findall(r"\{exercise\}[^\n]*\n:label: (\S+)", text)
    assert len(exercises) >= 4, f"only {len(exercises)} exercises"
    solutions = re.findall(r"\{solution-start\} (\S+)", text)
    assert sorted(solutions) == sorted(exercises), "every exercise needs exactly one solution"
    assert text.count("{solution-start}") == text.count("{solution-end}")
    assert "{cite" in text, "a chapter cites its sources"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_key_numbers_are_compared_by_nbval(path):
    # the cell tag nbval-check-output (python3 tasks.py format moves a first-line # NBVAL_CHECK_OUTPUT there)
    cells = code_cells(load_notebook(path))
    checked = [c for c in cells if notebooks_tool().compared_by_nbval(c)]
    assert len(checked) >= 3
    markers = [i for i, c in enumerate(cells) if source(c).lstrip().startswith("# NBVAL")]
    assert not markers, f"code cells {markers} show nbval's marker to readers: python3 tasks.py format moves it to a tag"
    for c in checked:
        assert any(o["output_type"] == "stream" for o in c["outputs"]), "a compared cell must print its numbers"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_interactive_cells_have_a_static_figure_beside_them(path):
    cells = load_notebook(path)["cells"]
    for i, c in enumerate(cells):
        if c["cell_type"] == "code" and "widgets.interact" in source(c):
            assert "remove-output" in c["metadata"].get("tags", []), "the book cannot run widgets: hide their output"
            following = cells[i + 1]
            assert any("image/png" in o.get("data", {}) for o in following.get("outputs", [])), (
                "a widget cell must be followed by a static figure for the rendered book"
            )


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_notebook_stays_small(path):
    assert path.stat().st_size < 5 * 2**20


def test_toc_lists_every_chapter_and_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    for f in files:
        assert (ROOT / f).with_suffix(".md").exists() or (ROOT / f).with_suffix(".ipynb").exists(), f
    listed = {f for f in files if f.startswith("chapters/")}
    assert listed == {f"chapters/{p.stem}" for p in CHAPTERS}


prose_tool = load_tool("prose")


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_measured_numbers_in_the_prose_are_glued_not_typed(path):
    """A figure the chapter measured (one that an output prints) is inserted with {glue:text}, never typed, so it
    cannot drift from the computation; a paper's numbers and the chapter's own settings stay typed (a markdown cell
    may list a typed number that an output happens to repeat, with its reason, in metadata nodelib.typed)."""
    typed = prose_tool.typed_measurements(load_notebook(path))
    assert not typed, "glue these (nodelib.report.glue and {glue:text}):\n" + "\n".join(map(str, typed[:10]))
