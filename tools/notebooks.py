"""Keep the chapter notebooks in the shape the book needs: formatted, executed, clean, with a record.

Run through ``python3 tasks.py`` (which uses the project's virtual environment):

    python3 tasks.py format [NOTEBOOK ...]    # code cells to 88 columns (ruff format, then long strings/comments)
    python3 tasks.py execute [NOTEBOOK ...]   # run top to bottom, strip widget state, record versions and time,
                                              # then check the notebook under nbval

``execute`` writes a record into the notebook's metadata (``nodelib_execution``): when it ran, how long, on
which machine and with which versions of Python, torch, torchdiffeq and NumPy, and whether nbval passed.
The book's execution-status page (book/execution_status.md) is a table of these records.
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
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        new = wrap_long_lines(ruff_format(source))
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
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores"


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
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    seconds = time.perf_counter() - started
    nbformat.write(nb, path)
    nb_json = read(path)
    removed = strip_widgets(nb_json)
    if not any("image/png" in out.get("data", {}) for cell in nb_json["cells"] for out in cell.get("outputs", [])):
        sys.exit(f"{path.name} ran, but no cell displayed a figure: is the inline backend in use?")
    record = {
        "executed": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(seconds, 1),
        "machine": machine(),
        **cpu_record(),
        **versions(),
    }
    nb_json["metadata"][RECORD_KEY] = record
    write(path, nb_json)
    print(f"{path.name}: ran in {seconds:.0f} s; {removed} widget outputs stripped", flush=True)
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
