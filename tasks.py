#!/usr/bin/env python3
"""Build, test and open the book. Needs only Python 3.11+; everything else goes into ./.venv on first use.

    python3 tasks.py book    # build the HTML book into _build/html from the committed notebooks
    python3 tasks.py test    # unit tests, every chapter under nbval, and the book build with -W
    python3 tasks.py lab     # open JupyterLab on the chapters (data root as for the tests; --allow-root as root)
    python3 tasks.py format [NOTEBOOK ...]   # code cells to the book's 88 columns
    python3 tasks.py pdf [--no-solutions]    # the whole book as one PDF, _build/pdf/ (needs Chromium)
    python3 tasks.py assign                  # problem sets: dist/assignments/student/ and autograder/
    python3 tasks.py grade SUBMISSIONS_DIR   # grade submitted notebooks locally (no Docker) into one CSV
    python3 tasks.py student-book            # the book without solutions, in _build/student/
    python3 tasks.py execute [NOTEBOOK ...]  # run chapters top to bottom, strip widget state, record versions
                                             # and time for the execution-status page, check under nbval

The virtual environment is (re)installed when pyproject.toml changes. Set NODELIB_VENV to put it
elsewhere. Extra arguments after `test` go to pytest (e.g. `python3 tasks.py test -k solvers`).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("NODELIB_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
EXTRAS = {"book": "book", "test": "test", "lab": "lab", "grading": "grading", "teach": "teach"}


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], **kwargs)
    if code != 0:
        sys.exit(code)


def ensure_env(extra: str) -> None:
    """Create .venv and install nodelib (editable) with the given extra, unless already done."""
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py runs on whatever python3 the reader has
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
        run([PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{extra}-{digest}"
    if stamp.exists():
        return
    started = time.perf_counter()
    print(f"Installing nodelib[{extra}] and its dependencies (first run only; torch is large) ...", flush=True)
    run([PYTHON, "-m", "pip", "install", "--quiet", "--editable", f"{ROOT}[{extra}]"])
    stamp.write_text("ok\n")
    print(f"Installed in {time.perf_counter() - started:.0f} s.", flush=True)


PDF = ROOT / "_build" / "pdf" / "neural-odes-textbook.pdf"  # tools/pdf.py writes it


def book(args: list[str]) -> None:
    ensure_env(EXTRAS["book"])
    run([BIN / "jupyter-book", "build", ROOT, *args])
    print(f"\nThe book is at {ROOT / '_build' / 'html' / 'index.html'}")
    if PDF.is_file():  # book/_ext/bookpages.py copied it beside the website
        made = time.strftime("%Y-%m-%d %H:%M", time.localtime(PDF.stat().st_mtime))
        print(f"Its PDF download links open the PDF made on {made}; `python3 tasks.py pdf` makes a new one.")
    else:
        print("Its PDF download links need the PDF: `python3 tasks.py pdf` prints it and puts it beside the website.")


def with_data_root(env: dict[str, str]) -> dict[str, str]:
    shared = ROOT.parent / "shared" / "data"
    if "NODELIB_DATA" not in env and shared.is_dir():
        env["NODELIB_DATA"] = str(shared)  # the real data sets beside the clone (CI, development); never copied in
    return env


def test_env() -> dict[str, str]:
    return with_data_root(dict(os.environ, MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1"))


def test(args: list[str]) -> None:
    ensure_env(EXTRAS["test"])
    env = test_env()
    run([PYTHON, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", *args], cwd=ROOT, env=env)


def lab_command(args: list[str]) -> list:
    cmd = [BIN / "jupyter", "lab", f"--ServerApp.root_dir={ROOT}", "--LabApp.default_url=/lab/tree/chapters"]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in args:
        cmd.append("--allow-root")  # a container's root user: JupyterLab refuses to start without it
    return [*cmd, *args]


def lab(args: list[str]) -> None:
    ensure_env(EXTRAS["lab"])
    env = with_data_root(dict(os.environ))  # the same data root as the tests: nothing downloads into chapters/
    if "NODELIB_DATA" in env:
        print(f"Data sets are read from {env['NODELIB_DATA']} (NODELIB_DATA)", flush=True)
    run(lab_command(args), env=env)


def pdf(args: list[str]) -> None:
    ensure_env(EXTRAS["test"])  # the book's packages and playwright (which drives the system's Chromium)
    run([PYTHON, ROOT / "tools" / "pdf.py", *args], cwd=ROOT)


def teach(command: str, args: list[str]) -> None:
    # grading needs only nodelib[grading]; assign needs otter-grader (nodelib[teach]); the student book, jupyter-book
    ensure_env(EXTRAS[{"grade": "grading", "assign": "teach"}.get(command, "test")])
    env = dict(os.environ, MPLBACKEND="Agg")
    run([PYTHON, ROOT / "tools" / "assignments.py", command, *args], cwd=ROOT, env=env)


def notebooks(command: str, args: list[str]) -> None:
    ensure_env(EXTRAS["test"])
    run([PYTHON, ROOT / "tools" / "notebooks.py", command, *args], cwd=ROOT, env=test_env())


COMMANDS = {
    "book": book,
    "test": test,
    "lab": lab,
    "format": lambda args: notebooks("format", args),
    "execute": lambda args: notebooks("execute", args),
    "pdf": lambda args: pdf(args),
    "assign": lambda args: teach("assign", args),
    "grade": lambda args: teach("grade", args),
    "student-book": lambda args: teach("student-book", args),
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    COMMANDS[sys.argv[1]](sys.argv[2:])
