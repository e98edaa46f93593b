#!/usr/bin/env python3
"""Build, test and open the book. Needs only Python 3.11+; everything else goes into ./.venv on first use.

    python3 tasks.py book    # build the HTML book into _build/html from the committed notebooks
    python3 tasks.py test    # unit tests, every chapter under nbval, and the book build with -W
    python3 tasks.py test --fast   # the quick loop: the unit tests on every core, without the slow ones, the
                                   # notebooks, the book, the browser and PDF tests and the problem sets' grading
    python3 tasks.py lab     # open JupyterLab on the chapters (data root as for the tests; --allow-root as root)
    python3 tasks.py format [NOTEBOOK ...]   # code cells to the book's 88 columns
    python3 tasks.py pdf [--no-solutions]    # the whole book as one PDF, _build/pdf/ (needs Chromium)
    python3 tasks.py assign                  # problem sets: dist/assignments/student/ and autograder/
    python3 tasks.py grade SUBMISSIONS_DIR   # grade submitted notebooks locally (no Docker) into one CSV
    python3 tasks.py student-book            # the book without solutions, in _build/student/
    python3 tasks.py execute [NOTEBOOK ...]  # run chapters top to bottom, strip widget state, record versions
                                             # and time for the execution-status page, check under nbval

The virtual environment is (re)installed when pyproject.toml changes. Set NODELIB_VENV to put it
elsewhere. Set NODELIB_TORCH=cpu to install PyTorch's CPU-only build (from https://download.pytorch.org/whl/cpu,
before nodelib; about 1.4 GB of environment instead of 6.4 GB with CUDA's libraries); it applies when torch is
first installed into the environment. Extra arguments after `test` go to pytest (e.g. `python3 tasks.py test -k
solvers`, `python3 tasks.py test --fast -x`); both test commands run pytest-xdist's `-n auto`, and `-n 0` after
them runs the tests in one process.
"""
from __future__ import annotations

import hashlib
import os
import re
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


CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch's CPU-only wheels (and their dependencies)
TORCH_PACKAGES = ("torch", "torchvision")  # the packages that index builds for the CPU


def cpu_torch() -> bool:
    """Whether NODELIB_TORCH asks for PyTorch's CPU-only build (``cpu``); unset or empty: the platform's default."""
    choice = os.environ.get("NODELIB_TORCH", "").strip().lower()
    if choice not in ("", "cpu"):
        sys.exit(f"NODELIB_TORCH={choice!r}: the only choice is 'cpu' (PyTorch's CPU-only build); unset it for the default")
    return choice == "cpu"


def requirements(extra: str) -> list[str]:
    """The requirements that ``pip install nodelib[extra]`` asks for: the core and the extra, its nested extras included."""
    import tomllib  # here, not above: on an older Python, ensure_env's message comes first

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found, todo, seen = list(project["dependencies"]), [extra], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in project["optional-dependencies"][name]:
            if requirement.startswith("nodelib["):
                todo.extend(requirement[len("nodelib["):requirement.index("]")].split(","))
            else:
                found.append(requirement)
    return found


def cpu_torch_command(extra: str) -> list:
    """pip's command for torch (and torchvision where the extra needs it) from PyTorch's CPU index, with the
    version bounds of pyproject.toml; run before nodelib's own install, which then finds them satisfied."""
    wanted = [r for r in requirements(extra) if re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] in TORCH_PACKAGES]
    return [PYTHON, "-m", "pip", "install", "--quiet", *wanted, "--index-url", CPU_TORCH_INDEX]


def installed_torch() -> str | None:
    """The version of torch installed in the virtual environment (``2.5.1+cpu``), or None."""
    probe = "import importlib.metadata as m\ntry: print(m.version('torch'))\nexcept m.PackageNotFoundError: pass"
    found = subprocess.run([str(PYTHON), "-c", probe], capture_output=True, text=True).stdout.strip()
    return found or None


def install_cpu_torch(extra: str) -> None:
    version = installed_torch()
    if version is not None and not version.endswith("+cpu") and sys.platform != "darwin":  # macOS wheels: CPU only
        sys.exit(f"NODELIB_TORCH=cpu, but {VENV} already has torch {version} (not the CPU-only build). Remove that "
                 "folder (or point NODELIB_VENV at a new one) and run this command again.")
    print(f"Installing PyTorch's CPU-only build from {CPU_TORCH_INDEX} (NODELIB_TORCH=cpu) ...", flush=True)
    run(cpu_torch_command(extra))


def ensure_env(extra: str) -> None:
    """Create .venv and install nodelib (editable) with the given extra, unless already done."""
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py runs on whatever python3 the reader has
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
        run([PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{extra}-{digest}{'-cpu' if cpu_torch() else ''}"
    if stamp.exists():
        return
    started = time.perf_counter()
    if cpu_torch():
        install_cpu_torch(extra)
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


# What `test --fast` leaves out (the full `test` runs them): the chapters' static checks and the prose test, the book
# build and the tests that read it (browser, PDF), and the problem sets' grading; pyproject.toml's "slow" marker
# takes out the other tests of more than a few seconds.
FAST_LEAVES_OUT = ("tests/test_notebooks.py", "tests/test_book.py", "tests/test_browser.py", "tests/test_pdf.py",
                   "tests/test_assignments.py")


def test_command(args: list[str]) -> list:
    """pytest's command line for `test` and `test --fast`; the arguments after them go last (so they win)."""
    fast = "--fast" in args
    args = [a for a in args if a != "--fast"]
    cmd = [PYTHON, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider"]
    if fast:  # tests/ alone (no chapter under nbval); one file per worker, as a file's module fixtures are built once
        cmd += ["tests", "-m", "not slow", *(f"--ignore={path}" for path in FAST_LEAVES_OUT), "-n", "auto", "--dist", "loadfile"]
    else:  # one file, or one notebook's cells, per worker; the book's tests share one worker and one build (conftest.py)
        cmd += ["-n", "auto", "--dist", "loadfile"]
    return [*cmd, *args]


def test(args: list[str]) -> None:
    ensure_env(EXTRAS["test"])
    run(test_command(args), cwd=ROOT, env=test_env())


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
