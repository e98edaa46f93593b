"""The problem sets (assignments/), the commands that assign and grade them, and the grading's defences.

One `assign` run and one `grade -j 2` run serve most of the module: for every problem set the master solution, the
blank student notebook and one plausible wrong answer (kept here) are graded together with the adversarial
submissions of tests/adversarial/ (cheats, one-line calls into nodelib, stubs, the wrong answers of issue 28 and
correct answers written differently), a broken file, a chapter, a PDF and a zip. Other tests regrade one file, run
past the time limit, grade through the Gradescope zip in a fresh virtual environment, run `otter check` and the
notebook's checks as Colab would, and scan the whole student edition of the book.
"""
from __future__ import annotations

import csv
import hashlib
import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, load_tool

pytestmark = pytest.mark.slow
TOOL = ROOT / "tools" / "assignments.py"
MASTERS = sorted((ROOT / "assignments").glob("ps[0-9][0-9]-*.ipynb"))
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
ADVERSARIAL = sorted((Path(__file__).parent / "adversarial").glob("*.cells"))
sys.path.insert(0, str(ROOT / "assignments" / "grader"))
import engine  # noqa: E402

CONFINED = engine.landlock_abi() >= 1 or engine.drop_to() is not None
needs_confinement = pytest.mark.skipif(not CONFINED, reason="this machine cannot confine student code (no Landlock, "
                                       "not root with an interpreter nobody can read): graded --unconfined")

# One plausible wrong answer per problem set: it passes the public checks a student can run and fails a hidden test.
WRONG = {
    "ps01-euler-and-solvers": ("q1_richardson", "richardson_euler", """
def richardson_euler(f, z0, T, n):
    def euler(steps):
        h, z = T / steps, z0
        for k in range(steps):
            z = z + h * f((k + 1) * h, z)  # the step evaluates f at the end of its interval
        return z

    return 2 * euler(2 * n) - euler(n)
"""),
    "ps02-adjoint": ("q1_end_time", "end_time_gradient", """
def end_time_gradient(A, z0, c, T):
    return (A @ torch.linalg.matrix_exp(A * T) @ z0).sum()  # L = sum of z(T), whatever c is
"""),
    "ps03-learning-dynamics": ("q1_least_squares", "fit_linear_field", """
def fit_linear_field(t, z):
    dz = (z[1:] - z[:-1]) / (t[1:] - t[:-1])[:, None]
    return torch.linalg.lstsq((z[1:] + z[:-1]) / 2, dz).solution  # the transpose of A
"""),
    "ps04-limits-and-augmentation": ("q1_order_kept", "order_preserved", """
def order_preserved(x0, x1):
    return bool((x1[1:] > x1[:-1]).all())  # assumes x0 is sorted
"""),
    "ps05-odenets": ("q2_topk", "top_k_accuracy", """
def top_k_accuracy(logits, y, k):
    return float((logits.argmax(dim=1) == y).double().mean())  # ignores k
"""),
    "ps06-ace-node": ("q1_pairwise", "attend", """
def attend(h, a):
    return torch.einsum("bij,bj->bi", torch.softmax(a, dim=1), h)  # softmax over columns
"""),
    "ps07-anodev2": ("q1_heat_fft", "diffuse", """
def diffuse(w, tau, t):
    n = w.shape[-1]
    kr = 2 * torch.pi * torch.fft.fftfreq(n, dtype=w.dtype)
    kc = 2 * torch.pi * torch.fft.rfftfreq(n, dtype=w.dtype)
    decay = torch.exp(-tau * t * (kr[:, None] ** 2 + kc[None, :] ** 2))
    return torch.fft.irfft2(torch.fft.rfft2(w) * decay)  # without s=: an odd grid loses a column
"""),
    "ps08-neural-gode": ("q2_poisson", "poisson_nll", """
def poisson_nll(eta, y):
    return (torch.exp(eta) - y * eta + torch.lgamma(y + 1)).sum()  # the sum, not the mean
"""),
}


def run_tool(*args, timeout=1800, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


def source(cell: dict) -> str:
    return "".join(cell["source"])


def fill(notebook: dict, function: str, text: str) -> dict:
    """Replace the answer cell that defines ``function`` (``setup``: the set's import cell)."""
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code" or cell.get("metadata", {}).get("nodelib", {}).get("setup"):
            continue
        body = source(cell).lstrip()
        if (function == "setup" and "set_default_dtype" in body) or body.startswith(f"def {function}("):
            cell["source"] = text.strip("\n").splitlines(keepends=True)
            return notebook
    raise AssertionError(f"no cell for {function}")


def student_notebook(dist: Path, name: str) -> dict:
    return json.loads((dist / "student" / name / f"{name}.ipynb").read_text())


def solved(dist: Path, master: Path) -> dict:
    """The student notebook with every answer cell replaced by the master's solution."""
    nb = student_notebook(dist, master.stem)
    for cell in json.loads(master.read_text())["cells"]:
        text = source(cell)
        if cell["cell_type"] == "code" and "# BEGIN SOLUTION" in text:
            name = re.match(r"\s*def (\w+)\(", text).group(1)
            body = "\n".join(line for line in text.splitlines() if line.strip() not in ("# BEGIN SOLUTION",
                                                                                        "# END SOLUTION"))
            fill(nb, name, body)
    return nb


def adversarial(path: Path, dist: Path) -> tuple[dict, dict]:
    """A submission made from a tests/adversarial/*.cells file, and its header (set, expect, public, kernelspec,
    base: the student notebook, or with ``base: solution`` the master's answers)."""
    text = path.read_text()
    header = dict(re.findall(r"^# (set|expect|public|kernelspec|base): (.+)$", text, flags=re.M))
    name = header["set"].strip()
    if header.get("base", "").strip() == "solution":
        nb = solved(dist, next(m for m in MASTERS if m.stem == name))
    else:
        nb = student_notebook(dist, name)
    for kind, name, body in re.findall(r"^# %% (replace|append) ?(\S*)\n(.*?)(?=^# %% |\Z)", text, flags=re.M | re.S):
        if kind == "replace":
            fill(nb, name, body)
        else:
            nb["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                                "source": body.strip("\n").splitlines(keepends=True)})
    if "kernelspec" in header:
        nb["metadata"]["kernelspec"] = {"name": header["kernelspec"].strip(), "display_name": "Python [conda env]",
                                        "language": "python"}
    header["expect"] = {q: float(v) for q, v in re.findall(r"(\w+)=([\d.]+)", header.get("expect", ""))}
    return nb, header


def bundle_hashes(dist: Path) -> dict[str, str]:
    return {str(p.relative_to(dist)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((dist / "autograder").rglob("*")) if p.is_file()}


def grade_args(folder: Path, dist: Path, *extra: str) -> list[str]:
    return ["grade", str(folder), "--dist", str(dist), *extra, *([] if CONFINED else ["--unconfined"])]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = run_tool("assign", "--dist", str(out), "-j", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def graded(dist, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("submissions")
    for master in MASTERS:
        name = master.stem
        (folder / f"{name}--blank.ipynb").write_text(json.dumps(student_notebook(dist, name)))
        (folder / f"{name}--full.ipynb").write_text(json.dumps(solved(dist, master)))
        _, function, text = WRONG[name]
        (folder / f"{name}--wrong.ipynb").write_text(json.dumps(fill(solved(dist, master), function, text)))
    expected = {}
    for path in ADVERSARIAL:
        nb, header = adversarial(path, dist)
        (folder / f"{path.stem}.ipynb").write_text(json.dumps(nb))
        expected[path.stem] = header
    (folder / "broken.ipynb").write_text('{"cells": [ this is not JSON')
    (folder / "a-chapter.ipynb").write_text(CHAPTERS[0].read_text())
    (folder / "essay.pdf").write_bytes(b"%PDF-1.4\n")
    with zipfile.ZipFile(folder / "zipped.zip", "w") as archive:
        archive.writestr("ps01.ipynb", "{}")
    before = bundle_hashes(dist)
    started = time.perf_counter()
    result = run_tool(*grade_args(folder, dist, "--timeout", "120", "-j", "2"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = list(csv.DictReader((folder / "grades.csv").open()))
    return {"rows": rows, "folder": folder, "expected": expected, "before": before, "dist": dist,
            "seconds": time.perf_counter() - started, "stdout": result.stdout}


def autograded(rows, student):
    return {r["question"]: (float(r["points"]), float(r["possible"])) for r in rows
            if r["student"] == student and r["points"] != "" and not r["note"].startswith("written")}


def test_there_is_a_problem_set_per_chapter():
    assert [m.name[:4] for m in MASTERS] == [f"ps{c.name[:2]}" for c in CHAPTERS]


@pytest.mark.parametrize("master", MASTERS, ids=[m.stem for m in MASTERS])
def test_each_set_has_graded_code_a_written_question_and_hidden_tests(master):
    qs = load_tool("assignments").questions(master)
    assert 3 <= len(qs) <= 5
    assert sum(not q["manual"] for q in qs) >= 2 and sum(q["manual"] for q in qs) >= 1
    text = master.read_text()
    assert "Rubric" in text, "written questions carry a rubric for the instructor"
    assert "hidden: true" not in text, "hidden tests live in assignments/hidden/, not in the master"
    hidden = (ROOT / "assignments" / "hidden" / f"{master.stem}.py").read_text()
    for q in qs:
        if not q["manual"]:
            assert hidden.count(f'@hidden("{q["name"]}"') >= 2, f"{q['name']} needs hidden tests"
    assert "_Type your answer here" not in text, "otter adds the answer cell; the prompt must not repeat it"


def test_the_master_solution_scores_full_marks(graded):
    for master in MASTERS:
        rows = [r for r in graded["rows"] if r["student"] == f"{master.stem}--full"]
        scores = autograded(rows, f"{master.stem}--full")
        assert scores and all(p == m for p, m in scores.values()), (master.stem, scores)
        assert all("public checks passed" in r["note"] for r in rows if r["question"] in scores)


def test_the_blank_student_notebook_scores_zero_and_fails_the_public_checks(graded):
    for master in MASTERS:
        rows = [r for r in graded["rows"] if r["student"] == f"{master.stem}--blank"]
        scores = autograded(rows, f"{master.stem}--blank")
        assert scores and all(p == 0 for p, _ in scores.values()), (master.stem, scores)
        assert all("public checks failed" in r["note"] for r in rows if r["question"] in scores), master.stem


def test_a_plausible_wrong_answer_passes_the_public_checks_and_fails_a_hidden_one(graded):
    for master in MASTERS:
        question = WRONG[master.stem][0]
        row = next(r for r in graded["rows"] if r["student"] == f"{master.stem}--wrong" and r["question"] == question)
        assert "public checks passed" in row["note"], f"{master.stem}: the public checks should not catch it"
        assert float(row["points"]) < float(row["possible"]), f"{master.stem}: the hidden tests should"
        others = autograded(graded["rows"], f"{master.stem}--wrong")
        assert all(p == m for q, (p, m) in others.items() if q != question), "the other answer is right"


@needs_confinement
@pytest.mark.parametrize("case", ADVERSARIAL, ids=[p.stem for p in ADVERSARIAL])
def test_an_adversarial_submission_scores_what_it_earned(graded, case):
    header = graded["expected"][case.stem]
    rows = {r["question"]: r for r in graded["rows"] if r["student"] == case.stem}
    got = {q: float(r["points"]) for q, r in rows.items() if q in header["expect"]}
    assert got == header["expect"], {q: rows[q]["note"] for q in rows}
    if "public" in header:
        for q in header["expect"]:
            assert f"public checks {header['public'].strip()}" in rows[q]["note"], rows[q]["note"]


@needs_confinement
def test_no_submission_could_read_or_change_the_autograder(graded):
    assert bundle_hashes(graded["dist"]) == graded["before"], "the autograder's files changed during grading"
    logs = graded["folder"] / "logs"
    rewrite = (logs / "cheat-rewrite-autograder.log").read_text()
    assert "REWRITE ATTEMPT: 0 files written" in rewrite and "PermissionError" in rewrite, rewrite[-2000:]
    reader = (logs / "cheat-read-hidden.log").read_text()
    assert "FOUND 0 files" in reader and "READ THE SOLUTION" not in reader, reader[-2000:]
    killer = (logs / "cheat-kill-grader.log").read_text()
    assert "KILL ATTEMPT: 0 could be killed" in killer, killer[-2000:]
    assert "THE AUTOGRADER'S FILES CHANGED" not in (graded["folder"] / "grades.csv").read_text()
    assert "Landlock ABI" in rewrite or "as uid 65534" in rewrite, "the log says how student code was confined"


def test_every_file_gets_a_row(graded):
    rows = graded["rows"]
    notes = {r["file"]: r["note"] for r in rows if not r["question"]}
    assert "not a readable notebook" in notes["broken.ipynb"]
    assert "not a submission of a known problem set" in notes["a-chapter.ipynb"]
    assert notes["essay.pdf"].startswith("not a notebook: a PDF")
    assert "zip archive" in notes["zipped.zip"]
    files = {p.name for p in graded["folder"].iterdir() if p.is_file() and p.name != "grades.csv"}
    assert {r["file"] for r in rows} == files
    assert len({r["student"] for r in rows}) == 3 * len(MASTERS) + len(ADVERSARIAL) + 4


def test_each_student_gets_a_log_and_a_feedback_file(graded):
    folder = graded["folder"]
    name = "ps07-anodev2--wrong"
    log = (folder / "logs" / f"{name}.log").read_text()
    assert "cell" in log and "test_odd_grid_batch: FAILED" in log, log[-2000:]
    feedback = (folder / "feedback" / f"{name}.md").read_text()
    assert "q1_heat_fft: 1 of 3" in feedback and "Hidden tests passed: 1 of 3." in feedback
    assert "test_odd_grid_batch" not in feedback and "odd grid" not in feedback, "hidden tests are not released"
    graded_notebooks = [r["student"] for r in graded["rows"] if r["question"]]
    assert all((folder / "feedback" / f"{s}.md").exists() for s in graded_notebooks)


def test_regrading_one_file_keeps_the_rest_and_the_hand_entered_written_scores(graded):
    folder, csv_path = graded["folder"], graded["folder"] / "grades.csv"
    rows = list(csv.DictReader(csv_path.open()))
    for r in rows:
        if r["file"] == "ps01-euler-and-solvers--full.ipynb" and r["question"] == "q3_stiff":
            r["points"], r["note"] = "1.5", "stiffness right, no price named"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = run_tool(*grade_args(folder, graded["dist"], "--only", "ps01-euler-and-solvers--full", "--timeout", "120"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "grading 1 notebook(s)" in result.stdout
    after = list(csv.DictReader(csv_path.open()))
    key = lambda r: (r["file"], r["question"])
    unchanged = {key(r): r for r in rows if r["file"] != "ps01-euler-and-solvers--full.ipynb"}
    assert {key(r): r for r in after if r["file"] != "ps01-euler-and-solvers--full.ipynb"} == unchanged
    mine = {r["question"]: r for r in after if r["file"] == "ps01-euler-and-solvers--full.ipynb"}
    assert mine["q3_stiff"]["points"] == "1.5" and mine["q3_stiff"]["note"] == "stiffness right, no price named"
    assert all(r["total"] == "7.5" for r in mine.values()), "the total counts the written score"


def test_a_submission_past_the_time_limit_leaves_nothing_behind(dist, tmp_path):
    master = MASTERS[0]
    loop_cell = fill(solved(dist, master), "richardson_euler", "while True:\n    pass")
    (tmp_path / "loop-cell.ipynb").write_text(json.dumps(loop_cell))
    marker = "987.6543"
    stubborn = solved(dist, master)
    stubborn["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": f"""
import os, signal, subprocess
subprocess.Popen(["sleep", "{marker}"], start_new_session=True)  # a detached process
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            pass
    os._exit(0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
while True:
    try:
        pass
    except BaseException:
        pass
"""})
    (tmp_path / "loop-forever.ipynb").write_text(json.dumps(stubborn))
    scratch = Path(tempfile.mkdtemp(prefix="grading-tmp-", dir="/tmp"))
    try:
        result = run_tool(*grade_args(tmp_path, dist, "--timeout", "12", "-j", "2"),
                          env=dict(os.environ, TMPDIR=str(scratch)))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        rows = {(r["student"], r["question"]): r for r in csv.DictReader((tmp_path / "grades.csv").open())}
        assert rows[("loop-cell", "q1_richardson")]["points"] == "0"
        assert rows[("loop-cell", "q2_resnet")]["points"] == "3", "the cells after the endless one still ran"
        assert "stopped after 6 s" in rows[("loop-cell", "q1_richardson")]["note"]
        assert all("timed out after 12 s" in rows[("loop-forever", q)]["note"] for q in ("q1_richardson", "q2_resnet"))
        assert list(scratch.iterdir()) == [], "temporary files left behind"
        time.sleep(1)
        left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if marker.encode() in p.read_bytes()]
        assert not left, "a process of the notebook survived grading"
        log = (tmp_path / "logs" / "loop-forever.log").read_text()
        assert "killed" in log and "process(es) the notebook left running" in log
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def system_python() -> Path | None:
    """A Python of this version that the user nobody may run (a distribution's /usr/bin/python3.X), when the tests run
    as root: then grading through the zip drops student code to nobody, as on Gradescope."""
    candidate = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if os.geteuid() != 0 or not candidate.exists():
        return None
    probe = subprocess.run([str(candidate), "-c", "import os, sys; print(os.path.dirname(os.__file__))"],
                           capture_output=True, text=True)
    stdlib = Path(probe.stdout.strip()) if probe.returncode == 0 else None
    ok = stdlib and engine.world_readable(candidate, executable=True) and engine.world_readable(stdlib)
    return candidate if ok else None


def test_the_gradescope_zip_grades_a_submission_in_a_fresh_environment(dist):
    """Unpack the zip as Gradescope does, run its setup.sh and run_autograder (no Docker).

    The fresh virtual environment reuses the test environment's packages through a .pth file (CI has no network
    beyond PyPI, and the CPU index of PyTorch is not PyPI), so setup.sh's pinned torch, torchdiffeq and IPython are
    found already installed at the pinned versions; nodelib itself is installed from the wheel inside the zip. What
    this proves: the zip is complete, setup.sh's pins are the versions tested here, the wheel installs, and
    run_autograder scores a submission and exports the written answers as a PDF (as root with a Python that others
    may run, with student code as nobody). Not proved: the download from PyTorch's CPU index or Gradescope's image."""
    name = "ps08-neural-gode"
    tmp_path = Path(tempfile.mkdtemp(prefix="gradescope-", dir="/tmp"))  # a folder others may enter, as /autograder
    tmp_path.chmod(0o755)
    try:
        gradescope_run(dist, name, tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def gradescope_run(dist: Path, name: str, tmp_path: Path) -> None:
    root = tmp_path / "autograder"
    with zipfile.ZipFile(dist / "autograder" / name / "gradescope.zip") as archive:
        archive.extractall(root / "source")
        assert {"setup.sh", "run_autograder", "requirements.txt", "gradescope.json"} <= set(archive.namelist())
        assert any(n.startswith("nodelib-") and n.endswith(".whl") for n in archive.namelist())
    base = system_python()
    if base:
        subprocess.run([str(base), "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    else:
        venv.EnvBuilder(with_pip=False).create(root / "venv")
    site = next((root / "venv" / "lib").glob("python3*/site-packages"))
    here = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "torch").is_dir())
    (site / "test-environment.pth").write_text(f"{here}\n")  # torch, IPython, pip ... of the test environment
    python = root / "venv" / "bin" / "python"
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), PIP_NO_INDEX="1")
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], capture_output=True, text=True, env=env,
                           timeout=600)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert "nodelib 0.1.0" in setup.stdout
    installed = subprocess.run([str(python), "-I", "-c", "import nodelib; print(nodelib.__file__)"],
                               capture_output=True, text=True, cwd=tmp_path)
    assert str(site) in installed.stdout, "nodelib comes from the wheel, not the repository"
    master = next(m for m in MASTERS if m.stem == name)
    nb = fill(solved(dist, master), *WRONG[name][1:])
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nodelib", {}).get("answer") == "q3_knots":
            cell["source"] = ["Uniform knots make every basis function vanish at t = 0."]
    (root / "submission").mkdir()
    (root / "submission" / "alice.ipynb").write_text(json.dumps(nb))
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": "alice@example.edu"}]}))
    run = subprocess.run(["bash", str(root / "source" / "run_autograder")], capture_output=True, text=True, env=env,
                         timeout=600)
    print(setup.stdout, run.stdout, run.stderr[-2000:])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    scores = {t["name"]: (t["score"], t["max_score"]) for t in results["tests"]}
    assert scores["q1_hat_basis"] == (3, 3) and scores["q2_poisson"][0] < 3 and results["score"] == 3 + scores["q2_poisson"][0]
    written = next(t for t in results["tests"] if t["name"].startswith("q3_knots"))
    assert written["max_score"] == 0 and "vanish at t = 0" in written["output"]
    pdf = (root / "results" / "written-answers.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 1
    log = (root / "results" / "log.txt").read_text()
    if base and engine.landlock_abi() >= 1:
        if engine.world_readable(here):  # nobody can read the packages the venv borrows: student code runs as nobody
            assert "sandbox: uid 65534, Landlock ABI" in log, log[:500]
        else:  # a clone in a private folder (mktemp -d): the grader must not drop to a user who cannot import torch
            assert "sandbox: " in log and "uid 65534" not in log, log[:500]


def test_otter_check_and_the_notebooks_own_checks_work_from_the_student_folder(dist, tmp_path):
    name = "ps07-anodev2"
    folder = tmp_path / name
    with zipfile.ZipFile(dist / "student" / f"{name}.zip") as archive:
        archive.extractall(tmp_path)
    assert (folder / "tests" / "q1_heat_fft.py").exists()
    master = next(m for m in MASTERS if m.stem == name)
    solution = solved(dist, master)
    half = fill(student_notebook(dist, name), "diffuse",
                next(source(c) for c in solution["cells"] if source(c).startswith("def diffuse(")))
    (folder / f"{name}.ipynb").write_text(json.dumps(half))
    otter = Path(sys.executable).parent / "otter"
    result = subprocess.run([str(otter), "check", f"{name}.ipynb"], capture_output=True, text=True, cwd=folder,
                            timeout=600)
    out = result.stdout + result.stderr
    assert "q1_heat_fft results: All test cases passed!" in out and "q2_advection results:" in out, out[-3000:]
    assert "❌" in out.split("q2_advection results:")[1], "the unanswered question fails its check"


COLAB = """
import json, subprocess, sys, types
from IPython.core.interactiveshell import InteractiveShell
nb = json.load(open(sys.argv[1]))
google, colab, shell_module = (types.ModuleType(n) for n in ("google", "google.colab", "google.colab._shell"))
google.colab, colab._shell = colab, shell_module
shell_module.Shell = type("Shell", (InteractiveShell,), {"__module__": "google.colab._shell"})
sys.modules.update({"google": google, "google.colab": colab, "google.colab._shell": shell_module})
installs, real_run = [], subprocess.run
subprocess.run = lambda cmd, *a, **k: installs.append(cmd) or subprocess.CompletedProcess(cmd, 0) \\
    if "pip" in cmd else real_run(cmd, *a, **k)
shell = shell_module.Shell.instance()
for cell in nb["cells"]:
    if cell["cell_type"] == "code":
        shell.run_cell("".join(cell["source"]), store_history=False)
print("INSTALLS", json.dumps(installs))
"""


def test_the_notebooks_checks_work_on_colab_with_only_the_notebook(dist, tmp_path):
    """Colab as otter sees it (the shell's class lives in google.colab), with no notebook file and no tests folder."""
    name = "ps08-neural-gode"
    master = next(m for m in MASTERS if m.stem == name)
    solution = solved(dist, master)
    nb = fill(student_notebook(dist, name), "hat_basis",
              next(source(c) for c in solution["cells"] if source(c).startswith("def hat_basis(")))
    (tmp_path / "nb.json").write_text(json.dumps(nb))
    work = tmp_path / "content"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", COLAB, str(tmp_path / "nb.json")], capture_output=True, text=True,
                            cwd=work, timeout=600)
    out = result.stdout + result.stderr
    assert "q1_hat_basis results: All test cases passed!" in out, out[-3000:]
    assert "q2_poisson results:" in out and "❌" in out.split("q2_poisson results:")[1]
    installs = json.loads(out.split("INSTALLS ")[1].splitlines()[0])
    assert any("otter-grader==7.0.0" in cmd and any(a.startswith("nodelib @ git+") for a in cmd) for cmd in installs)


def solution_lines(master: Path) -> list[str]:
    nb = json.loads(master.read_text())
    lines, inside = [], False
    for cell in nb["cells"]:
        text = source(cell)
        if cell["cell_type"] == "raw":
            inside = text.startswith("# BEGIN SOLUTION") or (inside and not text.startswith("# END SOLUTION"))
            continue
        if inside and cell["cell_type"] == "markdown":  # a written question's model answer and rubric
            lines += [line.strip() for line in text.splitlines()]
        elif cell["cell_type"] == "code":  # the scaffold (def ...) is the student's; the marked body is not
            body = re.findall(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", text, flags=re.S)
            lines += [line.strip() for chunk in body for line in chunk.splitlines()]
    return [line for line in lines if len(line) >= 16 and not line.startswith("#")]


def test_no_solution_or_hidden_test_reaches_the_student_folders(dist):
    for master in MASTERS:
        files = [p for p in (dist / "student" / master.stem).rglob("*") if p.is_file()]
        text = "\n".join(p.read_text() for p in files)
        with zipfile.ZipFile(dist / "student" / f"{master.stem}.zip") as archive:
            text += "\n".join(archive.read(n).decode() for n in archive.namelist())
        leaked = [line for line in solution_lines(master) if line in text or json.dumps(line)[1:-1] in text]
        assert not leaked, f"{master.stem}: {leaked[:3]}"
        hidden = (ROOT / "assignments" / "hidden" / f"{master.stem}.py").read_text()
        names = re.findall(r"^def (test_\w+)", hidden, flags=re.M)
        assert names and not [n for n in names if n in text], "hidden test names stay out"


MARK = re.compile(r"^(`{3,}|:{3,})\{solution-(start|end)\}[^\n]*\n(?:.*?\n)*?\1[ \t]*$", re.M)


def split_chapter(nb: dict) -> tuple[list[str], list[str]]:
    """The chapter's text inside its solutions, and outside them (markdown split at the solution directives)."""
    inside, solution, other = False, [], []
    for cell in nb["cells"]:
        text = source(cell)
        if cell["cell_type"] != "markdown":
            printed = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
            (solution if inside else other).append(text + "\n" + printed)
            continue
        pos = 0
        for m in MARK.finditer(text):
            (solution if inside else other).append(text[pos:m.start()])
            inside, pos = m.group(2) == "start", m.end()
        (solution if inside else other).append(text[pos:])
    return solution, other


def test_the_student_book_has_no_solutions_anywhere(tmp_path):
    import snowballstemmer

    result = run_tool("student-book", "--output", str(tmp_path / "student"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    build = tmp_path / "student"
    files = [p for p in build.rglob("*") if p.is_file()]
    assert not [p for p in files if "_sources" in p.parts or p.name.endswith((".ipynb", ".md.txt", ".ipynb.txt"))]
    texts = {p: p.read_text(errors="replace") for p in files if p.suffix in (".html", ".js", ".json", ".inv", ".css")}
    raw = "\n".join(t for p, t in texts.items() if p.suffix == ".html")
    assert 'class="exercise' in raw and "Solution to" not in raw, "exercises stay, solutions go"
    url = load_tool("assignments").repository()[0].split("github.com/")[1]
    launch = re.compile(rf"colab\.research\.google\.com/github/{url}|mybinder\.org/v2/gh/{url}|github\.com/{url}/blob/"
                        r"|download-source-button|launch-buttons")
    assert not [p.name for p, t in texts.items() if launch.search(t)], "a button or link opens the notebooks"
    everything = html_lib.unescape(re.sub(r"<[^>]+>", "", "\n".join(texts.values())))
    page_lines = {line.strip() for line in everything.splitlines()}
    leaked, solution_words, other_words = [], set(), set()
    stem = snowballstemmer.stemmer("porter").stemWord
    words = lambda text: {stem(w.lower()) for w in re.findall(r"[A-Za-z]{3,}", text)}
    other_sources = [p.read_text() for p in (ROOT / "book").glob("*.md")] + [(ROOT / "book" / "references.bib").read_text()]
    for chapter in CHAPTERS:
        solution, other = split_chapter(json.loads(chapter.read_text()))
        elsewhere = {line.strip() for text in other for line in text.splitlines()}
        leaked += [line.strip() for text in solution for line in text.splitlines()
                   if len(line.strip()) >= 30 and not line.strip().startswith("#") and line.strip() not in elsewhere
                   and line.strip() in page_lines]
        solution_words |= words("\n".join(solution))
        other_words |= words("\n".join(other))
    assert not leaked, leaked[:3]
    only_in_solutions = solution_words - other_words - words("\n".join(other_sources))
    assert len(only_in_solutions) > 20, "the search-index check needs words that only solutions use"
    index = texts[build / "searchindex.js"]
    data = json.loads(index[index.index("(") + 1:index.rindex(")")])
    indexed = set(data["terms"]) | set(data.get("titleterms", {}))
    assert not sorted(only_in_solutions & indexed), "the search index holds words of the solutions"


def test_the_grading_extra_is_light():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", d)[0] for d in extras["grading"]}
    assert names and not names & {"jupyter-book", "playwright", "mypy", "otter-grader", "nbval", "pytest"}
    assert "grading" in (ROOT / "tasks.py").read_text()


@pytest.mark.parametrize("flaw", ["public", "stub"])
def test_assign_refuses_a_set_whose_checks_do_not_hold(tmp_path, flaw):
    """A public check the master fails, or a hidden test that an answer returning its input passes, stops `assign`."""
    masters = tmp_path / "masters"
    (masters / "hidden").mkdir(parents=True)
    name = "ps08-neural-gode"
    text = (ROOT / "assignments" / f"{name}.ipynb").read_text()
    hidden = (ROOT / "assignments" / "hidden" / f"{name}.py").read_text()
    if flaw == "public":
        text = text.replace("math.log(6)", "math.log(7)")
    else:
        hidden += '''

@hidden("q2_poisson", 0)
def test_that_a_stub_passes(student):
    eta = torch.zeros(2)
    assert student("poisson_nll", eta, torch.zeros(2)) is not None
'''
    (masters / f"{name}.ipynb").write_text(text)
    (masters / "hidden" / f"{name}.py").write_text(hidden)
    result = run_tool("assign", name, "--masters", str(masters), "--dist", str(tmp_path / "dist"))
    assert result.returncode != 0
    expected = "fails its public checks: q2_poisson" if flaw == "public" else \
        "test_that_a_stub_passes passes an answer that returns 1.0"
    assert expected in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr[-2000:]


def test_the_written_answers_upload_as_gradescopes_api_expects(tmp_path):
    """The upload of the written-answer PDF (gradescope.json with a token), against a local stand-in for the API."""
    import http.server
    import threading

    import gradescope

    received = []

    class API(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), API)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pdf = tmp_path / "written-answers.pdf"
        pdf.write_bytes(b"%PDF-1.4 the answers")
        config = {"api_url": f"http://127.0.0.1:{server.server_port}", "token": "secret-token", "course_id": "12",
                  "assignment_id": "34"}
        message = gradescope.upload_pdf(config, pdf, ["alice@example.edu"])
    finally:
        server.shutdown()
    assert message == "written answers uploaded for alice@example.edu"
    path, headers, body = received[0]
    assert path == "/api/v1/courses/12/assignments/34/submissions" and headers["access-token"] == "secret-token"
    assert b'name="owner_email"\r\n\r\nalice@example.edu' in body and b"%PDF-1.4 the answers" in body
    assert b'name="pdf_attachment"; filename="written-answers.pdf"' in body
