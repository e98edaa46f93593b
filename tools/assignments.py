"""Problem sets for teaching with the book: assign, grade, and build the student edition.

    python3 tasks.py assign [SET ...]          # dist/assignments/student/ and dist/assignments/autograder/
    python3 tasks.py grade SUBMISSIONS_DIR     # grade every file in the folder (no Docker) into one CSV
    python3 tasks.py student-book              # the book without solutions, in _build/student/

The masters live in ``assignments/`` in otter-grader's notebook format with the public checks only; their hidden tests
are ``assignments/hidden/<set>.py`` (a private copy: ``--masters DIR``). ``otter assign`` makes the student notebook;
``assign`` then writes each set's autograder *bundle* (hidden tests, master solution, public checks, the grading engine
of ``assignments/grader/`` and a manifest of their hashes) and a Gradescope zip. Grading runs every submission's code
in a sandboxed process and scores what its functions return in a separate checker process: see ``book/teaching.md``
for the threat model.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MASTERS = ROOT / "assignments"
GRADER = MASTERS / "grader"
DIST = ROOT / "dist" / "assignments"
ENGINE_FILES = ("runner.py", "wire.py", "sandbox.py", "supervise.py", "checker.py", "spec.py", "engine.py",
                "written.py", "gradescope.py")
CSV_FIELDS = ["file", "student", "problem_set", "question", "points", "possible", "total", "note"]
WRITTEN_NOTE = "written: graded by hand"
OTTER_VERSION = "7.0.0"

sys.path.insert(0, str(GRADER))
import engine  # noqa: E402
import written  # noqa: E402


def otter() -> str:
    exe = Path(sys.executable).parent / "otter"
    return str(exe) if exe.exists() else "otter"


def masters(names: list[str] | None = None, folder: Path = MASTERS) -> list[Path]:
    found = sorted(folder.glob("ps[0-9][0-9]-*.ipynb"))
    if names:
        found = [p for p in found if p.stem in names or p.name in names]
        missing = set(names) - {p.stem for p in found} - {p.name for p in found}
        if missing:
            sys.exit(f"no problem set named {sorted(missing)} in {folder}")
    return found


def questions(master: Path) -> list[dict]:
    """The questions of a master notebook, from its BEGIN QUESTION cells: name, points, manual."""
    import yaml

    nb = json.loads(master.read_text(encoding="utf-8"))
    found = []
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "raw" and text.startswith("# BEGIN QUESTION"):
            config = yaml.safe_load(text.split("\n", 1)[1])
            found.append({"name": config["name"], "points": config["points"], "manual": bool(config.get("manual"))})
    return found


# ----------------------------------------------------------------------------------------------------- assign

def solution_source(master: Path) -> str:
    """The master's code with its solutions and without its checks: the reference the hidden tests may call."""
    nb = json.loads(master.read_text(encoding="utf-8"))
    chunks, in_tests = [], False
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "raw":
            in_tests = text.startswith("# BEGIN TESTS") or (in_tests and not text.startswith("# END TESTS"))
            continue
        if cell["cell_type"] == "code" and not in_tests:
            chunks.append("\n".join(line for line in text.splitlines()
                                    if line.strip() not in ("# BEGIN SOLUTION", "# END SOLUTION")))
    return "\n\n\n".join(chunks) + "\n"


def repository() -> tuple[str, str]:
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]
    return config["url"].rstrip("/"), config.get("branch", "main")


def setup_cell(name: str, checks: dict[str, str]) -> str:
    """The student notebook's first cell: Colab installs, the public checks written to ./tests, otter started."""
    url, branch = repository()
    def literal(text: str) -> str:  # readable where it can be: the checks are the student's to read
        return f"'''\\\n{text}'''" if "'''" not in text and "\\" not in text else repr(text)

    embedded = "".join(f"    {file!r}: {literal(text)},\n" for file, text in sorted(checks.items()))
    return (
        "# Set-up. On Colab this installs nodelib and otter-grader (elsewhere it installs nothing). Everywhere it\n"
        "# writes this set's checks into ./tests (so grader.check and `otter check` work with just this notebook).\n"
        "import pathlib\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        '    pip = [sys.executable, "-m", "pip", "install", "--quiet"]\n'
        f'    nodelib = "nodelib @ git+{url}@{branch}"\n'
        f'    subprocess.run([*pip, nodelib, "otter-grader=={OTTER_VERSION}"], check=True)\n'
        "\n"
        f"CHECKS = {{\n{embedded}}}\n"
        'pathlib.Path("tests").mkdir(exist_ok=True)\n'
        "for file, text in CHECKS.items():\n"
        '    pathlib.Path("tests", file).write_text(text)\n'
        "\n"
        "import otter\n"
        "\n"
        "# (on Colab the notebook is not a file otter can open)\n"
        f'grader = otter.Notebook(None if "google.colab" in sys.modules else "{name}.ipynb", tests_dir="tests")'
    )


def student_notebook(nb: dict, name: str, checks: dict[str, str], qs: list[dict]) -> dict:
    """otter's student notebook with the set-up cell first and each written question's cells tagged."""
    cell = {"cell_type": "code", "execution_count": None, "id": "setup", "metadata": {"nodelib": {"setup": True}},
            "outputs": [], "source": setup_cell(name, checks).splitlines(keepends=True)}
    cells = [c for c in nb["cells"] if not (c["cell_type"] == "code" and "otter.Notebook(" in "".join(c["source"]))]
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    cells.insert(first_code, cell)
    manual = iter([q["name"] for q in qs if q["manual"]])
    current = None
    for c in cells:
        text = "".join(c["source"])
        if c["cell_type"] == "markdown" and "<!-- BEGIN QUESTION -->" in text:
            current = next(manual, None)
            c.setdefault("metadata", {})["nodelib"] = {"prompt": current}
        elif c["cell_type"] == "markdown" and "<!-- END QUESTION -->" in text:
            current = None
        elif current and c["cell_type"] == "markdown":
            c.setdefault("metadata", {})["nodelib"] = {"answer": current}
    nb["cells"] = cells
    kernelspec = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.setdefault("metadata", {})["kernelspec"] = kernelspec
    return nb


def public_parameters_are_functions(source: str, functions: set[str]) -> list[str]:
    """The parameters of the public checks that are not answer functions (otter would fill them from globals)."""
    bad = []
    for params in re.findall(r"def test_\w+\(([^)]*)\)", source):
        bad += [p.strip() for p in params.split(",") if p.strip() and p.strip() not in functions]
    return bad


def answer_functions(master: Path) -> set[str]:
    nb = json.loads(master.read_text(encoding="utf-8"))
    names = set()
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and "# BEGIN SOLUTION" in text:
            names.update(re.findall(r"^def (\w+)\(", text, flags=re.M))
    return names


def nodelib_wheel(target: Path) -> Path:
    """This project's nodelib as a wheel (no network: the build backend of the running environment)."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("nodelib-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"  # a clean copy: no .venv, no build folders in the wheel
        shutil.copytree(ROOT / "nodelib", src / "nodelib", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                                 "--wheel-dir", str(target), str(src)], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"building the nodelib wheel failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return next(target.glob("nodelib-*.whl"))


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder (choose the Ubuntu 24.04 base image: Python 3.12).
# It installs a CPU build of torch, torchdiffeq and IPython at the versions this kit was tested with, and this
# project's nodelib from the wheel in this zip; then makes source/ (hidden tests, solution) readable by root only:
# student code runs as the unprivileged user nobody.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
VENV="$ROOT/venv"
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ] && [ ! -x "$VENV/bin/python" ]; then
  for candidate in python3.12 python3.11 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PYTHON="$(command -v "$candidate")"; break
    fi
  done
fi
if [ -z "$PYTHON" ] && [ ! -x "$VENV/bin/python" ]; then
  apt-get update -q && apt-get install -y -q python3.11 python3.11-venv
  PYTHON=python3.11
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu "torch==@TORCH@"
"${PIP[@]}" -r "$SOURCE/requirements.txt" "$SOURCE/@WHEEL@"
"${PIP[@]}" --no-deps --force-reinstall "$SOURCE/@WHEEL@"  # this nodelib, whatever else is on the path
chmod -R go-rwx "$SOURCE"
"$VENV/bin/python" -I -c "import torch, torchdiffeq, IPython, nodelib; print('torch', torch.__version__, 'nodelib', nodelib.__version__)"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission (it copies this file to /autograder/run_autograder).
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
exec "$ROOT/venv/bin/python" -I "$ROOT/source/grader/gradescope.py" "$ROOT"
"""


def gradescope_zip(bundle: Path, wheel: Path, target: Path) -> Path:
    """otter-free Gradescope autograder: the bundle, the nodelib wheel, pinned requirements, setup and run scripts."""
    import torch

    versions = {name: importlib.metadata.version(name) for name in ("torchdiffeq", "ipython")}
    torch_version = torch.__version__.split("+")[0]
    requirements = (f"# torch=={torch_version} comes from the CPU index first (setup.sh)\n"
                    f"torchdiffeq=={versions['torchdiffeq']}\nipython=={versions['ipython']}\n")
    config = {"timeout": 300, "release": "scores", "visibility": "visible",
              "token": "", "course_id": "", "assignment_id": ""}
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(bundle.rglob("*")):
            rel = path.relative_to(bundle).as_posix()
            if path.is_file() and not rel.endswith((".zip", "-solution.ipynb")):
                archive.write(path, rel)
        archive.write(wheel, wheel.name)
        archive.writestr("requirements.txt", requirements)
        archive.writestr("gradescope.json", json.dumps(config, indent=1) + "\n")
        for name, text in (("setup.sh", SETUP_SH.replace("@TORCH@", torch_version).replace("@WHEEL@", wheel.name)),
                           ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            archive.writestr(info, text)
    return target


def write_bundle(master: Path, hidden: Path, public: dict[str, str], target: Path) -> None:
    """The autograder bundle of one set, with a manifest of every file's hash (checked before each use)."""
    shutil.rmtree(target, ignore_errors=True)
    (target / "grader").mkdir(parents=True)
    (target / "public").mkdir()
    files: dict[str, bytes] = {
        "questions.json": (json.dumps(questions(master), indent=1) + "\n").encode(),
        "solution.py": solution_source(master).encode(),
        "hidden.py": hidden.read_bytes(),
    }
    files.update({f"public/{q}.py": text.encode() for q, text in public.items()})
    files.update({f"grader/{name}": (GRADER / name).read_bytes() for name in ENGINE_FILES})
    for rel, data in files.items():
        (target / rel).write_bytes(data)
    manifest = {"set": master.stem, "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    os.chmod(target, 0o700)


def check_bundles(targets: list[Path]) -> list[dict]:
    """Load every set's hidden tests in one checker: the master solution must pass its public checks and hidden tests,
    no stub may pass a hidden test, and the hidden tests of a question must add up to its points."""
    private = Path(tempfile.mkdtemp(prefix="nodelib-assign-"))
    checker = engine.Checker(private)
    plans = []
    try:
        for target in targets:
            try:
                plan = checker.load(engine.Bundle(target))
            except engine.GradingError as err:
                sys.exit(str(err))
            if plan.get("public"):
                sys.exit(f"{target.name}: the master solution fails its public checks: {'; '.join(plan['public'])}")
            if plan.get("stubs"):
                sys.exit(f"{target.name}: hidden tests that a stub passes: {'; '.join(plan['stubs'])}")
            for q in json.loads((target / "questions.json").read_text()):
                points = sum(t["points"] for t in plan["tests"] if t["question"] == q["name"])
                if not q["manual"] and abs(points - q["points"]) > 1e-9:
                    sys.exit(f"{target.name}: the hidden tests of {q['name']} are worth {points:g} points, the "
                             f"question {q['points']:g}")
            plans.append(plan)
    finally:
        checker.close()
        shutil.rmtree(private, ignore_errors=True)
    return plans


def assign_one(master: Path, hidden_dir: Path, dist: Path) -> Path:
    name = master.stem
    hidden = hidden_dir / f"{name}.py"
    if not hidden.exists():
        sys.exit(f"{name}: no hidden tests at {hidden}")
    qs = questions(master)
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run([otter(), "assign", str(master), tmp], capture_output=True, text=True,
                                cwd=master.parent)
        log = result.stdout + result.stderr
        if result.returncode != 0:
            print(log[-4000:])
            sys.exit(f"{master.name}: otter assign failed (above)")
        checks = {p.name: p.read_text() for p in sorted(Path(tmp, "student", "tests").glob("*.py"))}
        functions = answer_functions(master)
        for file, text in checks.items():
            bad = public_parameters_are_functions(text, functions)
            if bad:
                sys.exit(f"{name}: the public check {file} takes {bad}: checks may take only answer functions")
        nb = json.loads(Path(tmp, "student", master.name).read_text())
        nb = student_notebook(nb, name, checks, qs)
        folder = dist / "student" / name
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "tests").mkdir(parents=True)
        (folder / master.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        for file, text in checks.items():
            (folder / "tests" / file).write_text(text)
        with zipfile.ZipFile(dist / "student" / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                archive.write(path, f"{name}/{path.relative_to(folder).as_posix()}")
        target = dist / "autograder" / name
        write_bundle(master, hidden, {Path(f).stem: t for f, t in checks.items()}, target)
        shutil.copy2(Path(tmp, "autograder", master.name), target / f"{name}-solution.ipynb")
    return target


def assign(names: list[str] | None, dist: Path, masters_dir: Path, hidden_dir: Path | None, jobs: int) -> int:
    """otter assign every master (its solution is checked against its public checks), then bundle and check."""
    found = masters(names, masters_dir)
    hidden_dir = hidden_dir or masters_dir / "hidden"
    (dist / "student").mkdir(parents=True, exist_ok=True)
    (dist / "autograder").mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        targets = list(pool.map(lambda m: assign_one(m, hidden_dir, dist), found))
    plans = check_bundles(targets)
    wheel = nodelib_wheel(dist / "wheel")
    for target, plan in zip(targets, plans):
        gradescope_zip(target, wheel, target / "gradescope.zip")
        print(f"{target.name}: student notebook, autograder ({len(plan['tests'])} hidden tests, passed by the master "
              "solution) and Gradescope zip written", flush=True)
    print(f"student notebooks: {dist / 'student'}\nautograders: {dist / 'autograder'}")
    return 0


# ------------------------------------------------------------------------------------------------------ grade

def problem_set_of(path: Path) -> tuple[str | None, str, dict | None]:
    """The problem set a file was handed out for (otter stores it in the metadata), or why there is none."""
    if path.suffix.lower() != ".ipynb":
        kind = {".pdf": "a PDF", ".zip": "a zip archive (unpack it and grade the notebook inside)", ".py": "a script",
                ".html": "an HTML export"}.get(path.suffix.lower(), f"a {path.suffix or 'file without extension'} file")
        return None, f"not a notebook: {kind}; not graded", None
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"not a readable notebook ({type(err).__name__}: {err})", None
    name = nb.get("metadata", {}).get("otter", {}).get("assignment_name") if isinstance(nb, dict) else None
    if not name:
        return None, "not a submission of a known problem set (no otter assignment name in its metadata)", None
    return name, "", nb


def submissions(folder: Path, output: Path) -> list[Path]:
    """Every file in the folder (a row each), except hidden files and the grader's own outputs."""
    own = {output.resolve(), output.with_suffix(".csv.tmp").resolve()}
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.resolve() not in own)


def code_note(q: dict, tests: list[dict], public: dict, run_note: str) -> str:
    passed = [t for t in tests if t["passed"]]
    parts = []
    if q["name"] in public:
        parts.append("public checks passed" if public[q["name"]].get("passed") else "public checks failed")
    parts.append(f"hidden tests {len(passed)}/{len(tests)}")
    failed = [t["name"] for t in tests if not t["passed"]]
    if failed:
        parts.append("failed: " + ", ".join(failed))
    if run_note:
        parts.append(run_note)
    return "; ".join(parts)


def feedback(file: str, set_name: str, qs: list[dict], run: dict, level: str) -> str:
    auto = [q for q in qs if not q["manual"]]
    total = sum(t["points"] for t in run["tests"])
    lines = [f"# {set_name}: {file}", "",
             f"Autograded questions: {total:g} of {sum(q['points'] for q in auto):g} points."]
    if any(q["manual"] for q in qs):
        lines.append("The written question is graded by hand.")
    if run["note"]:
        lines.append(f"Note: {run['note']}.")
    errors = [c for c in run["cells"] if c.get("error")]
    for c in errors[:10]:
        lines.append(f"Cell {c['cell']} raised {c['error']}")
    for q in auto:
        tests = [t for t in run["tests"] if t["question"] == q["name"]]
        lines += ["", f"## {q['name']}: {sum(t['points'] for t in tests):g} of {q['points']:g}",
                  f"Hidden tests passed: {sum(t['passed'] for t in tests)} of {len(tests)}."]
        public = run["public"].get(q["name"])
        if public is not None:
            lines.append(f"Your own checks (grader.check): {'passed' if public.get('passed') else 'failed'}.")
        if level in ("hints", "messages"):
            for t in tests:
                if not t["passed"]:
                    lines.append(f"- {t['hint'] or t['name']}" + (f" ({t['message']})" if level == "messages" else ""))
    return "\n".join(lines) + "\n"


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [dict(r) for r in csv.DictReader(handle)]


def write_rows(path: Path, rows: list[dict]) -> None:
    totals: dict[tuple, float] = {}
    for r in rows:
        try:
            totals[(r["file"], r["problem_set"])] = totals.get((r["file"], r["problem_set"]), 0.0) + float(r["points"])
        except (TypeError, ValueError):
            totals.setdefault((r["file"], r["problem_set"]), 0.0)
    for r in rows:
        r["total"] = f"{totals[(r['file'], r['problem_set'])]:g}" if r["problem_set"] and r["question"] else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def fmt(x: float) -> str:
    return f"{x:g}"


def grade(folder: Path, output: Path, dist: Path, timeout: float, jobs: int = 1, only: list[str] | None = None,
          level: str = "scores", unconfined: bool = False, pdf: bool = False) -> int:
    if not folder.is_dir():
        sys.exit(f"no such folder of submissions: {folder}")
    report = output.parent
    files = submissions(folder, output)
    if only:
        chosen = [p for p in files if p.name in only or p.stem in only]
        missing = set(only) - {p.name for p in chosen} - {p.stem for p in chosen}
        if missing:
            sys.exit(f"no file {sorted(missing)} in {folder}")
        files = chosen
    if not files:
        sys.exit(f"no files in {folder}")
    for sub in ("logs", "feedback"):
        (report / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs_list, rows_by_file = [], {}
    bundles: dict[str, engine.Bundle] = {}
    for path in files:
        name, why, nb = problem_set_of(path)
        folder_of = dist / "autograder" / name if name else None
        if name and name not in bundles:
            if folder_of and (folder_of / "manifest.json").exists():
                try:
                    bundles[name] = engine.Bundle(folder_of)
                except engine.GradingError as err:
                    sys.exit(str(err))
            else:
                why = f"problem set {name} has no autograder in {dist / 'autograder'} (run python3 tasks.py assign)"
        if why:
            rows_by_file[path.name] = [{"file": path.name, "student": path.stem, "problem_set": name or "",
                                        "question": "", "points": "", "possible": "", "note": why}]
            print(f"{path.name}: {why}", flush=True)
        else:
            jobs_list.append((path, name, nb))
    secrets = [folder, report, dist, MASTERS, ROOT / "dist"]
    try:
        grader = engine.Engine(bundles, secrets, timeout, allow_unconfined=unconfined) if jobs_list else None
    except engine.GradingError as err:
        sys.exit(str(err))
    old = {(r.get("file") or r.get("student"), r.get("question")): r for r in read_rows(output)}

    def one(item):
        path, name, nb = item
        bundle = bundles[name]
        log = report / "logs" / f"{path.stem}.log"
        log.write_text(f"{path.name}: problem set {name}\nsandbox: {grader.confinement}\n")
        run = grader.grade(nb, bundle, log)
        rows = []
        manual = [q["name"] for q in bundle.questions if q["manual"]]
        for q in bundle.questions:
            row = {"file": path.name, "student": path.stem, "problem_set": name, "question": q["name"],
                   "possible": fmt(q["points"])}
            if q["manual"]:
                before = old.get((path.name, q["name"]), {})
                row["points"] = before.get("points", "")
                row["note"] = before.get("note") or WRITTEN_NOTE
            else:
                tests = [t for t in run["tests"] if t["question"] == q["name"]]
                row["points"] = fmt(sum(t["points"] for t in tests))
                row["note"] = code_note(q, tests, run["public"], run["note"])
                if run["tampered"]:
                    row["note"] += "; THE AUTOGRADER'S FILES CHANGED WHILE IT RAN (restored): check this submission"
            rows.append(row)
        with log.open("a") as handle:
            handle.write(f"\n===== results ({run['seconds']:.1f} s) =====\n")
            for t in run["tests"]:
                handle.write(f"{t['question']} {t['name']}: {'passed' if t['passed'] else 'FAILED'} "
                             f"({fmt(t['points'])}/{fmt(t['possible'])}) {t['message']}\n")
            if run["tampered"]:
                handle.write(f"the autograder's files changed while this notebook ran: {run['tampered']} (restored)\n")
        (report / "feedback" / f"{path.stem}.md").write_text(feedback(path.name, name, bundle.questions, run, level))
        if pdf and manual:
            written.write_pdf(report / "written" / f"{path.stem}.pdf", f"{name}: {path.name}",
                              written.written_answers(nb, manual))
        auto = sum(t["points"] for t in run["tests"])
        possible = sum(q["points"] for q in bundle.questions if not q["manual"])
        print(f"{path.name}: {name}, {auto:g} of {possible:g} autograded points ({run['seconds']:.1f} s)"
              f"{'; ' + run['note'] if run['note'] else ''}", flush=True)
        return path.name, rows

    try:
        if grader:
            print(f"grading {len(jobs_list)} notebook(s), {max(1, jobs)} at a time; {grader.confinement}", flush=True)
            with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
                for file, rows in pool.map(one, jobs_list):
                    rows_by_file[file] = rows
    except engine.GradingError as err:  # the autograder itself is broken (a hidden test that cannot load ...)
        sys.exit(f"grading stopped: {err}")
    finally:
        if grader:
            grader.close()
    present = {p.name for p in submissions(folder, output)}
    merged = [r for r in read_rows(output) if r.get("file") in present and r.get("file") not in rows_by_file]
    for path in sorted(rows_by_file):
        merged += rows_by_file[path]
    merged.sort(key=lambda r: (r["file"], r.get("question", "")))
    write_rows(output, merged)
    print(f"grades: {output} ({len(files)} files, {time.perf_counter() - started:.1f} s); logs and feedback in "
          f"{report / 'logs'} and {report / 'feedback'}")
    return 0


# ------------------------------------------------------------------------------------------------ student book

# a link that opens one of the book's notebooks, solutions included: Colab, Binder, or the file on GitHub
LAUNCH = re.compile(r"https?://(?:colab\.research\.google\.com/github/|mybinder\.org/v2/gh/)[^\s\"'<>)`]*"
                    r"|https?://github\.com/[^\s\"'<>)`]*/blob/[^\s\"'<>)`]*")


def unlink_launches(html: str) -> str:
    """Links to the notebooks with solutions become plain text; bare such URLs are replaced."""
    html = re.sub(r"<a\b[^>]*\bhref=\"(?:" + LAUNCH.pattern + r")\"[^>]*>(.*?)</a>", r"\1", html, flags=re.S)
    return LAUNCH.sub("(the notebooks your instructor hands out)", html)


def student_book(target: Path) -> int:
    """The HTML book with hide_solutions (every solution removed whole), in target; the public build is untouched.

    The build has no page sources (``_sources``), no download, launch or repository buttons, and no link that opens
    a chapter's notebook (which holds the solutions) on Colab, Binder or GitHub."""
    from pdf import build_site  # tools/ is on the path: this file runs as a script from there

    html = build_site(solutions=False, out=ROOT / "_build" / "student-src")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(html, target, ignore=shutil.ignore_patterns("_sources", "*.ipynb", ".buildinfo"))
    for page in target.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        changed = unlink_launches(text)
        if changed != text:
            page.write_text(changed, encoding="utf-8")
    print(f"the student edition is at {target / 'index.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assign", help="student notebooks, autograders and Gradescope zips for every problem set")
    a.add_argument("sets", nargs="*", help="problem sets (default: all)")
    a.add_argument("--dist", type=Path, default=DIST)
    a.add_argument("--masters", type=Path, default=MASTERS, help="the folder of master notebooks (a private copy)")
    a.add_argument("--hidden", type=Path, default=None, help="the folder of hidden tests (default: MASTERS/hidden)")
    a.add_argument("-j", "--jobs", type=int, default=2, help="problem sets assigned at a time (default 2)")
    g = sub.add_parser("grade", help="grade a folder of submitted notebooks into one CSV")
    g.add_argument("folder", type=Path)
    g.add_argument("--output", type=Path, default=None, help="the CSV (default: FOLDER/grades.csv); logs/ and "
                   "feedback/ are written beside it")
    g.add_argument("--dist", type=Path, default=DIST, help="where `assign` wrote the autograders")
    g.add_argument("--timeout", type=float, default=300, help="seconds one submission may run (default 300)")
    g.add_argument("-j", "--jobs", type=int, default=1, help="notebooks graded at a time (default 1)")
    g.add_argument("--only", action="append", metavar="NAME", help="regrade only this file (or its name without "
                   ".ipynb); repeat for more; the other rows of the CSV are kept")
    g.add_argument("--feedback", choices=("scores", "hints", "messages"), default="scores",
                   help="what the feedback files release about failed hidden tests (default: scores only)")
    g.add_argument("--written-pdf", action="store_true", help="also export each notebook's written answers as a PDF")
    g.add_argument("--unconfined", action="store_true", help="grade even where student code cannot be confined")
    s = sub.add_parser("student-book", help="the book without solutions")
    s.add_argument("--output", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    if args.command == "assign":
        return assign(args.sets, args.dist, args.masters, args.hidden, args.jobs)
    if args.command == "grade":
        return grade(args.folder, args.output or args.folder / "grades.csv", args.dist, args.timeout, args.jobs,
                     args.only, args.feedback, args.unconfined, args.written_pdf)
    return student_book(args.output)


if __name__ == "__main__":
    sys.exit(main())
