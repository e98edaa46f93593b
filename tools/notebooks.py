"""Keep the chapter notebooks in the shape the book needs: formatted, executed, clean, with a record.

Run through ``python3 tasks.py`` (which uses the project's virtual environment):

    python3 tasks.py format [NOTEBOOK ...]    # code cells to 88 columns (ruff format, then long strings/comments),
                                              # nbval markers to cell tags, the Colab cell written and collapsed
    python3 tasks.py execute [NOTEBOOK ...]   # run top to bottom, strip widget state, record versions and time,
                                              # then check the notebook under nbval

``execute`` writes a record into the notebook's metadata (``nodelib_execution``): when it ran, how long, on
which machine and with which versions of Python, torch, torchdiffeq and NumPy, and whether nbval passed.
The book's execution-status page (book/execution_status.md) is a table of these records, so a chapter needs no
cell of its own that prints its run time.

``format`` also moves nbval's first-line comment markers (``# NBVAL_CHECK_OUTPUT``, which readers would see on
the page) into the cell tags nbval reads as well (``nbval-check-output``), and tags the Colab set-up cell
``hide-cell`` so that the book shows it collapsed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/cpupaths.py
CHAPTERS = ROOT / "chapters"
LINE_LENGTH = 88  # what the rendered book's code column shows without scrolling
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RECORD_KEY = "nodelib_execution"
COLAB_TAG = "hide-cell"  # the Colab set-up cell is collapsed in the book ("Show code cell content")
# nbval's comment markers and the cell tags it reads with the same meaning (nbval 0.11, plugin.metadata_tags)
NBVAL_MARKERS = {
    "NBVAL_CHECK_OUTPUT": "nbval-check-output",
    "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
    "NBVAL_SKIP": "nbval-skip",
    "NBVAL_RAISES_EXCEPTION": "nbval-raises-exception",
}
CHECK_TAG = NBVAL_MARKERS["NBVAL_CHECK_OUTPUT"]


def chapter_paths(names: list[str]) -> list[Path]:
    paths = [Path(n).resolve() for n in names] if names else sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            sys.exit(f"not a notebook: {path}")
    return paths


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def write(path: Path, nb: dict) -> None:
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    tmp = path.with_suffix(".ipynb.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------- format
def repository() -> tuple[str, str]:
    """The repository URL and branch, set once in _config.yml (launch buttons, Colab cells, publishing)."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]
    return config["url"].rstrip("/"), config.get("branch", "main")


def colab_cell_source() -> str:
    """The first code cell of every chapter: installs what Colab lacks, and nothing anywhere else."""
    url, branch = repository()
    return (
        "# Colab set-up: installs what Colab lacks (nodelib and torchdiffeq).\n"
        "# Elsewhere (JupyterLab, Binder, the book's own environment) this cell does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        f'    REPO = "git+{url}@{branch}"\n'
        '    pip = [sys.executable, "-m", "pip", "install", "--quiet"]\n'
        '    subprocess.run([*pip, f"nodelib @ {REPO}"], check=True)'
    )


def long_lines(source: str, limit: int = LINE_LENGTH) -> list[tuple[int, str]]:
    return [(i + 1, line) for i, line in enumerate(source.splitlines()) if len(line) > limit]


def _split_points(body: str) -> list[int]:
    """Positions after a space that are outside {...} replacement fields of an f-string."""
    depth, points, i = 0, [], 0
    while i < len(body):
        ch = body[i]
        if body.startswith("{{", i) or body.startswith("}}", i):
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == " " and depth == 0:
            points.append(i + 1)
        i += 1
    return points


STRING_LINE = re.compile(r'^(?P<indent>\s*)(?P<prefix>[fr]{0,2})(?P<q>")(?P<body>.*)"(?P<tail>,?)$')


def split_string_line(line: str, limit: int = LINE_LENGTH) -> list[str] | None:
    """Split a line holding one string literal (inside brackets) into implicitly concatenated pieces."""
    m = STRING_LINE.match(line)
    if not m or '"' in m["body"].replace('\\"', ""):
        return None
    indent, prefix, body, tail = m["indent"], m["prefix"], m["body"], m["tail"]
    room = limit - len(indent) - len(prefix) - 2 - len(tail)
    pieces, start = [], 0
    points = _split_points(body)
    while len(body) - start > room:
        fitting = [p for p in points if start < p <= start + room]
        if not fitting:
            return None
        pieces.append(body[start : fitting[-1]])
        start = fitting[-1]
    pieces.append(body[start:])
    out = []
    for k, piece in enumerate(pieces):
        p = prefix if ("{" in piece or "r" in prefix) else prefix.replace("f", "")
        out.append(f'{indent}{p}"{piece}"' + (tail if k == len(pieces) - 1 else ""))
    return out


def split_comment_line(line: str, limit: int = LINE_LENGTH) -> list[str] | None:
    m = re.match(r"^(\s*)# (.*)$", line)
    if not m:
        return None
    indent = m.group(1)
    return [f"{indent}# {part}" for part in textwrap.wrap(m.group(2), limit - len(indent) - 2)]


def wrap_long_lines(source: str, limit: int = LINE_LENGTH) -> str:
    out: list[str] = []
    for line in source.split("\n"):
        if len(line) <= limit:
            out.append(line)
            continue
        out.extend(split_string_line(line, limit) or split_comment_line(line, limit) or [line])
    return "\n".join(out)


PRAGMA = re.compile(r"#\s*(noqa|type:|fmt:|pragma|pylint:)")


def lift_trailing_comments(source: str, limit: int = LINE_LENGTH) -> str:
    """Put a statement's trailing comment on its own line above the statement, when the comment would make ruff
    split the statement (the line is too long with it) or already did (the statement spans several lines and the
    comment follows its last bracket). ruff then joins the statement again when it fits: no more
    ``with (`` / ``torch.no_grad()`` / ``):  # ...``. Pragma comments (noqa, type:, fmt:) stay where they are."""
    import io
    import tokenize

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source
    lines = source.split("\n")
    layout = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT,
              tokenize.ENDMARKER}
    moves, start, last = [], None, None
    for k, tok in enumerate(tokens):
        if tok.type == tokenize.NEWLINE:
            start = None
        elif tok.type not in layout:
            if start is None:
                start = tok.start[0]
            last = tok
        elif tok.type == tokenize.COMMENT and start is not None and last is not None:
            row = tok.start[0]
            ends_statement = k + 1 < len(tokens) and tokens[k + 1].type == tokenize.NEWLINE
            trailing = last.end[0] == row
            if ends_statement and trailing and not PRAGMA.match(tok.string) and (
                start < row or len(lines[row - 1]) > limit
            ):
                moves.append((row, tok.start[1], start, tok.string))
    for row, column, first, comment in sorted(moves, reverse=True):
        lines[row - 1] = lines[row - 1][:column].rstrip()
        indent = re.match(r"\s*", lines[first - 1]).group(0)
        lines.insert(first - 1, indent + comment)
    return "\n".join(lines)


def nbval_markers_to_tags(cell: dict) -> bool:
    """Move nbval's comment markers at the top of a code cell into the cell's tags; True if the cell changed."""
    lines = "".join(cell["source"]).split("\n")
    tags = cell.setdefault("metadata", {}).get("tags", [])
    moved = False
    while lines and re.fullmatch(r"#\s*(NBVAL_[A-Z_]+)\s*", lines[0]) and lines[0].strip("# ") in NBVAL_MARKERS:
        tag = NBVAL_MARKERS[lines.pop(0).strip("# ")]
        tags = tags if tag in tags else [*tags, tag]
        moved = True
    if moved:
        while lines and not lines[0].strip():
            lines.pop(0)
        cell["metadata"]["tags"] = tags
        cell["source"] = "\n".join(lines).splitlines(keepends=True)
    return moved


def compared_by_nbval(cell: dict) -> bool:
    """Whether nbval compares this cell's output under --nbval-lax: the cell tag, or (until `format` has moved it)
    the first-line comment marker."""
    if CHECK_TAG in cell.get("metadata", {}).get("tags", []):
        return True
    first = "".join(cell.get("source", "")).lstrip().split("\n", 1)[0]
    return first.strip() == "# NBVAL_CHECK_OUTPUT"


def shows_a_figure(cell: dict) -> bool:
    return (cell["cell_type"] == "code" and "remove-output" not in cell.get("metadata", {}).get("tags", [])
            and any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])))


def figures_without_names(nb: dict) -> list[str]:
    """Figure cells that the text cannot reference yet: each cell that displays a figure needs, in its metadata,
    ``"mystnb": {"figure": {"caption": "...", "name": "fig-..."}}`` (a numbered caption; ``{numref}`fig-...```
    refers to it) beside its alt text. Returns one line per missing piece, e.g. "cell 12: no figure name"."""
    problems = []
    for index, cell in enumerate(nb["cells"]):
        if not shows_a_figure(cell):
            continue
        figure = cell["metadata"].get("mystnb", {}).get("figure", {})
        name, caption = figure.get("name", ""), figure.get("caption", "")
        if not name:
            problems.append(f"cell {index}: no figure name (mystnb.figure.name)")
        elif not re.fullmatch(r"fig-[a-z0-9]+(-[a-z0-9]+)*", name):
            problems.append(f"cell {index}: figure name {name!r} is not of the form fig-chN-what")
        if not caption.strip():
            problems.append(f"cell {index}: no figure caption (mystnb.figure.caption)")
    return problems


def ruff_format(source: str, limit: int = LINE_LENGTH) -> str:
    """ruff's formatting of one cell; cells with IPython syntax (%, !) are left as they are."""
    if any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
        return source
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff if ruff.exists() else "ruff"), "format", "--isolated", f"--line-length={limit}", "-"],
        input=source, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"ruff could not format this cell:\n{source}\n{result.stderr}")
    return result.stdout.rstrip("\n")


def format_notebook(path: Path) -> list[str]:
    nb = read(path)
    problems = []
    code_cells = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    if code_cells and 'if "google.colab" in sys.modules' in "".join(code_cells[0]["source"]):
        code_cells[0]["source"] = colab_cell_source().splitlines(keepends=True)
        metadata = code_cells[0].setdefault("metadata", {})
        tags = [t for t in metadata.get("tags", []) if t not in ("hide-input", "hide-output", "remove-input")]
        metadata["tags"] = tags if COLAB_TAG in tags else [COLAB_TAG, *tags]
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        nbval_markers_to_tags(cell)
        source = "".join(cell["source"])
        new = wrap_long_lines(ruff_format(lift_trailing_comments(source)))
        new = ruff_format(new)  # a split string can change the layout around it
        if new != source:
            cell["source"] = new.splitlines(keepends=True)
        problems += [f"{path.name} cell {index} line {n}: {len(text)} > {LINE_LENGTH}" for n, text in long_lines(new)]
    write(path, nb)
    return problems


# ---------------------------------------------------------------------------------------------- execute
def strip_widgets(nb: dict) -> int:
    """Remove widget state and widget outputs (finished progress bars, controls that need a kernel).

    The book is static: a widget without its kernel renders as a blank gap or a dead control, and loading
    the widget manager costs every page about a megabyte of scripts from a CDN. Returns outputs removed.
    """
    removed = 0
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        kept = [out for out in cell.get("outputs", []) if WIDGET_VIEW not in out.get("data", {})]
        removed += len(cell.get("outputs", [])) - len(kept)
        cell["outputs"] = kept
    return removed


def versions() -> dict[str, str]:
    import numpy
    import torch
    import torchdiffeq

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchdiffeq": torchdiffeq.__version__,
        "numpy": numpy.__version__,
    }


def machine() -> str:
    """The system and its cores; the processor and its code path are in the record's "cpu" (cpu_record)."""
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores"


def kernel_seconds(nb) -> float:
    """The time the kernel spent running the cells: from each cell's start to its reply (nbclient's timing record),
    summed. Waits of the client between cells (nbclient's polling, a lost message) are not counted."""
    total = 0.0
    for cell in nb.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        begin, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if begin and end:
            parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
            total += max(0.0, (parse(end) - parse(begin)).total_seconds())
    return total


def cpu_record() -> dict[str, str]:
    """The processor and the code path its outputs came from, and the other path they were checked on."""
    import cpupaths

    own = cpupaths.describe(cpupaths.own_environment(), sys.executable)
    _, other = cpupaths.other_path()
    return {"cpu": cpupaths.summary(own), "other_path": other.split(" (")[0]}


def execute_notebook(path: Path, timeout: int, check: bool) -> dict:
    import nbformat
    from nbclient import NotebookClient

    os.environ.pop("MPLBACKEND", None)  # a non-interactive backend (as the tests set) would drop the figures
    nb = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    # The recorded run time is the kernel's own (kernel_seconds): a wait of the client between cells (an nbclient
    # stall once added minutes with the kernel idle) is not counted. The kernel is stopped at once at the end instead
    # of being asked to shut down and waited for. nbclient's wait for a cell's last outputs after its reply stays at
    # its default (4 s); a shorter one can drop a large figure's message on a busy machine.
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", shutdown_kernel="immediate",
                            record_timing=True, resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    wall = time.perf_counter() - started
    seconds = kernel_seconds(nb) or wall
    nbformat.write(nb, path)
    nb_json = read(path)
    removed = strip_widgets(nb_json)
    if not any("image/png" in out.get("data", {}) for cell in nb_json["cells"] for out in cell.get("outputs", [])):
        sys.exit(f"{path.name} ran, but no cell displayed a figure: is the inline backend in use?")
    record = {
        "executed": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(seconds, 1),  # the cells' own run time, as "Run All" takes it (no kernel start-up)
        "wall_seconds": round(wall, 1),  # kernel start-up and shutdown included
        "machine": machine(),
        **cpu_record(),
        **versions(),
    }
    nb_json["metadata"][RECORD_KEY] = record
    write(path, nb_json)
    print(f"{path.name}: ran in {seconds:.0f} s ({wall:.0f} s with the kernel's start and stop); "
          f"{removed} widget outputs stripped", flush=True)
    if check:
        record["nbval"] = nbval_status(path)
        record["nbval_other_path"] = nbval_status(path, other_path=True)
        current = read(path)  # the file as it is now: an edit made while nbval ran is kept
        current["metadata"][RECORD_KEY] = record
        write(path, current)
    return record


def nbval_status(path: Path, other_path: bool = False) -> str:
    """Run the notebook under nbval as the test suite does ('passed' or 'failed', with the date), on the machine's
    own CPU code path or, with ``other_path``, on the other one that tests/test_cpu_paths.py uses."""
    import cpupaths

    env = cpupaths.own_environment()
    if other_path:
        forced, why = cpupaths.other_path()
        if forced is None:
            return f"not checked: {why}"
        env.update(forced)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-p",
         "no:xdist", "-q", "-rs", str(path)],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )
    if "skipped" in result.stdout.splitlines()[-1] and "passed" not in result.stdout.splitlines()[-1]:
        print(result.stdout[-2000:], flush=True)
        return f"not checked: skipped ({dt.date.today().isoformat()})"
    verdict = "passed" if result.returncode == 0 else "failed"
    print(f"{path.name}: nbval {verdict}" + (" on the other CPU code path" if other_path else ""), flush=True)
    if verdict == "failed":
        print(result.stdout[-4000:], flush=True)
    return f"{verdict} ({dt.date.today().isoformat()})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = sub.add_parser("format", help="format code cells to 88 columns")
    fmt.add_argument("notebooks", nargs="*")
    ex = sub.add_parser("execute", help="execute, clean and record notebooks")
    ex.add_argument("notebooks", nargs="*")
    ex.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default 600)")
    ex.add_argument("--no-check", action="store_true", help="skip the nbval check after executing")
    args = parser.parse_args(argv)
    if args.command == "format":
        problems = [p for path in chapter_paths(args.notebooks) for p in format_notebook(path)]
        for problem in problems:
            print("still too long:", problem)
        return 1 if problems else 0
    failed = False
    for path in chapter_paths(args.notebooks):
        record = execute_notebook(path, args.timeout, check=not args.no_check)
        failed |= any(record.get(k, "passed").startswith("failed") for k in ("nbval", "nbval_other_path"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
