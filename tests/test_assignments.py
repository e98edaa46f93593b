"""The problem sets (assignments/, otter-grader's format) and the commands that assign and grade them.

One `assign` and one `grade` run serve the whole module: for every problem set the master solution, the blank
student notebook and one plausible wrong answer (kept here) are graded together with a broken file and a notebook
that belongs to no problem set.
"""
from __future__ import annotations

import csv
import html as html_lib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, load_tool

pytestmark = pytest.mark.slow
TOOL = ROOT / "tools" / "assignments.py"
MASTERS = sorted((ROOT / "assignments").glob("ps[0-9][0-9]-*.ipynb"))
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

# One plausible wrong answer per problem set: it passes the public tests a student can run and fails a hidden one.
WRONG = {
    "ps01-euler-and-solvers": ("q1_richardson", "richardson_euler", """
def richardson_euler(f, z0, T, n):
    def euler(steps):
        h, z = T / steps, z0
        for k in range(steps):
            z = z + h * f(k * h, z)
        return z

    return (euler(2 * n) + euler(n)) / 2  # an average, not the extrapolation: still first order
"""),
    "ps02-adjoint": ("q1_end_time", "end_time_gradient", """
def end_time_gradient(A, z0, c, T):
    return c @ A @ z0  # f at the start, not at z(T)
"""),
    "ps03-learning-dynamics": ("q1_least_squares", "fit_linear_field", """
def fit_linear_field(t, z):
    dz = (z[1:] - z[:-1]) / (t[1:] - t[:-1])[:, None]
    return torch.linalg.lstsq(z[:-1], dz).solution.T  # forward differences: first order only
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
    k = torch.fft.fftfreq(n, dtype=w.dtype)  # forgot the 2 pi
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    return torch.fft.ifft2(torch.fft.fft2(w) * torch.exp(-tau * k2 * t)).real
"""),
    "ps08-neural-gode": ("q2_poisson", "poisson_nll", """
def poisson_nll(eta, y):
    return (torch.exp(eta) - y * eta).mean()  # without log y!
"""),
}


def run_tool(*args, timeout=1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def fill(notebook: dict, function: str, source: str) -> dict:
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and "".join(cell["source"]).lstrip().startswith(f"def {function}("):
            cell["source"] = source.strip().splitlines(keepends=True)
            return notebook
    raise AssertionError(f"no answer cell for {function}")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = run_tool("assign", "--dist", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def graded(dist, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("submissions")
    for master in MASTERS:
        name = master.stem
        student = json.loads((dist / "student" / master.name).read_text())
        (folder / f"{name}--blank.ipynb").write_text(json.dumps(student))
        solution = dist / "autograder" / name / f"{name}-solution.ipynb"
        (folder / f"{name}--full.ipynb").write_text(solution.read_text())
        _, function, source = WRONG[name]
        (folder / f"{name}--wrong.ipynb").write_text(json.dumps(fill(student, function, source)))
    (folder / "broken.ipynb").write_text('{"cells": [ this is not JSON')
    (folder / "a-chapter.ipynb").write_text(CHAPTERS[0].read_text())
    result = run_tool("grade", str(folder), "--dist", str(dist), "--timeout", "120")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = list(csv.DictReader((folder / "grades.csv").open()))
    return {"rows": rows, "folder": folder}


def autograded(rows, student):
    return {r["question"]: (float(r["points"]), float(r["possible"])) for r in rows
            if r["student"] == student and r["points"] != ""}


def test_there_is_a_problem_set_per_chapter():
    assert [m.name[:4] for m in MASTERS] == [f"ps{c.name[:2]}" for c in CHAPTERS]


@pytest.mark.parametrize("master", MASTERS, ids=[m.stem for m in MASTERS])
def test_each_set_has_graded_code_and_a_written_question(master):
    qs = load_tool("assignments").questions(master)
    assert 3 <= len(qs) <= 5
    assert sum(not q["manual"] for q in qs) >= 2 and sum(q["manual"] for q in qs) >= 1
    text = master.read_text()
    assert "Rubric" in text, "written questions carry a rubric for the instructor"
    assert text.count("hidden: true") >= sum(not q["manual"] for q in qs), "every code question has hidden tests"


def test_the_master_solution_scores_full_marks(graded):
    for master in MASTERS:
        scores = autograded(graded["rows"], f"{master.stem}--full")
        assert scores and all(p == m for p, m in scores.values()), (master.stem, scores)


def test_the_blank_student_notebook_scores_zero(graded):
    for master in MASTERS:
        scores = autograded(graded["rows"], f"{master.stem}--blank")
        assert scores and all(p == 0 for p, _ in scores.values()), (master.stem, scores)


def test_a_plausible_wrong_answer_passes_the_public_tests_and_fails_a_hidden_one(graded):
    for master in MASTERS:
        question = WRONG[master.stem][0]
        row = next(r for r in graded["rows"] if r["student"] == f"{master.stem}--wrong" and r["question"] == question)
        assert row["note"] == "public tests passed", f"{master.stem}: the public tests should not catch it"
        assert float(row["points"]) < float(row["possible"]), f"{master.stem}: the hidden tests should"
    full = [r for r in graded["rows"] if r["student"].endswith("--full") and r["points"] != ""]
    assert all(r["note"] == "public tests passed" for r in full)


def test_bad_submissions_are_reported_and_the_rest_graded(graded):
    rows = {r["student"]: r for r in graded["rows"] if r["student"] in ("broken", "a-chapter")}
    assert "not a readable notebook" in rows["broken"]["note"]
    assert "not a submission of a known problem set" in rows["a-chapter"]["note"]
    assert len({r["student"] for r in graded["rows"]}) == 3 * len(MASTERS) + 2


def test_a_submission_that_never_ends_times_out(dist, tmp_path):
    name = MASTERS[0].stem
    student = json.loads((dist / "student" / MASTERS[0].name).read_text())
    student = fill(student, WRONG[name][1], "while True:\n    pass")
    (tmp_path / "loop.ipynb").write_text(json.dumps(student))
    result = run_tool("grade", str(tmp_path), "--dist", str(dist), "--timeout", "15")
    assert result.returncode == 0
    row = next(csv.DictReader((tmp_path / "grades.csv").open()))
    assert row["student"] == "loop" and "timed out after 15 s" in row["note"]


def solution_lines(master: Path) -> list[str]:
    nb = json.loads(master.read_text())
    lines, inside = [], False
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "raw":
            inside = text.startswith("# BEGIN SOLUTION") or (inside and not text.startswith("# END SOLUTION"))
            continue
        if inside and cell["cell_type"] == "markdown":  # a written question's model answer and rubric
            lines += [line.strip() for line in text.splitlines()]
        elif cell["cell_type"] == "code":  # the scaffold (def ...) is the student's; the marked body is not
            body = re.findall(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", text, flags=re.S)
            lines += [line.strip() for chunk in body for line in chunk.splitlines()]
    return [line for line in lines if len(line) >= 16 and not line.startswith("#")]


def test_no_solution_line_reaches_the_student_notebooks(dist):
    for master in MASTERS:
        student = (dist / "student" / master.name).read_text()
        leaked = [line for line in solution_lines(master) if json.dumps(line)[1:-1] in student]
        assert not leaked, f"{master.stem}: {leaked[:3]}"
        assert "hidden=True" not in student


def test_the_student_book_has_no_solutions(tmp_path):
    result = run_tool("student-book", "--output", str(tmp_path / "student"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    raw = "\n".join(p.read_text() for p in (tmp_path / "student" / "chapters").glob("*.html"))
    pages = html_lib.unescape(re.sub(r"<[^>]+>", "", raw))  # highlighted code is split into spans
    page_lines = {line.strip() for line in pages.splitlines()}
    assert 'class="exercise' in raw and "Solution to" not in pages, "exercises stay, solutions go"
    leaked = []
    for chapter in CHAPTERS:
        nb = json.loads(chapter.read_text())
        inside, solution, elsewhere = False, [], set()
        for cell in nb["cells"]:
            text = "".join(cell["source"])
            if cell["cell_type"] == "markdown" and "{solution-start}" in text:
                inside = True
            if cell["cell_type"] == "code":
                lines = [line.strip() for line in text.splitlines()]
                (solution.extend if inside else elsewhere.update)(lines)
                printed = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
                if not inside:  # e.g. nodelib's own source, printed by the chapter
                    elsewhere.update(line.strip() for line in printed.splitlines())
            if cell["cell_type"] == "markdown" and "{solution-end}" in text:
                inside = False
        # a solution line the chapter also uses outside its solutions may appear; the others may not
        leaked += [line for line in solution if len(line) >= 30 and not line.startswith("#")
                   and line not in elsewhere and line in page_lines]
    assert not leaked, leaked[:3]
