"""Problem sets for teaching with the book: assign, grade, and build the student edition.

    python3 tasks.py assign                    # dist/assignments/student/*.ipynb and dist/assignments/autograder/
    python3 tasks.py grade SUBMISSIONS_DIR     # grade every submitted notebook locally (no Docker), one CSV
    python3 tasks.py student-book              # the book without solutions, in _build/student/

The masters live in ``assignments/`` in otter-grader's notebook format (``otter assign`` splits each into a
student notebook, with only the public tests, and an autograder with all of them). Grading runs ``otter run``
(no container) on each submission in the project's environment, with a time limit; one bad submission never
stops the others.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MASTERS = ROOT / "assignments"
DIST = ROOT / "dist" / "assignments"
CSV_FIELDS = ["student", "problem_set", "question", "points", "possible", "total", "note"]


def otter() -> str:
    exe = Path(sys.executable).parent / "otter"
    return str(exe) if exe.exists() else "otter"


def masters(names: list[str] | None = None) -> list[Path]:
    found = sorted(MASTERS.glob("ps[0-9][0-9]-*.ipynb"))
    if names:
        found = [p for p in found if p.stem in names or p.name in names]
        missing = set(names) - {p.stem for p in found} - {p.name for p in found}
        if missing:
            sys.exit(f"no problem set named {sorted(missing)} in {MASTERS}")
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


def assign(names: list[str] | None, dist: Path) -> int:
    """otter assign every master (its solution is checked against all its tests on the way)."""
    student_dir, grader_dir = dist / "student", dist / "autograder"
    student_dir.mkdir(parents=True, exist_ok=True)
    grader_dir.mkdir(parents=True, exist_ok=True)
    for master in masters(names):
        with tempfile.TemporaryDirectory() as tmp:
            result = subprocess.run([otter(), "assign", str(master), tmp], capture_output=True, text=True, cwd=MASTERS)
            log = result.stdout + result.stderr
            zips = list(Path(tmp, "autograder").glob("*.zip"))
            if result.returncode != 0 or "tests failed" in log or not zips:
                print(log[-4000:])
                sys.exit(f"{master.name}: otter assign failed (above)")
            shutil.copy2(Path(tmp, "student", master.name), student_dir / master.name)
            target = grader_dir / master.stem
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            shutil.copy2(zips[0], target / "autograder.zip")
            shutil.copy2(Path(tmp, "autograder", master.name), target / f"{master.stem}-solution.ipynb")
            (target / "questions.json").write_text(json.dumps(questions(master), indent=1) + "\n")
        print(f"{master.stem}: student notebook and autograder written", flush=True)
    print(f"student notebooks: {student_dir}\nautograders: {grader_dir}")
    return 0


def problem_set_of(path: Path) -> tuple[str | None, str]:
    """The problem set a notebook was handed out for (otter stores it in the metadata), or why there is none."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"not a readable notebook ({type(err).__name__}: {err})"
    name = nb.get("metadata", {}).get("otter", {}).get("assignment_name") if isinstance(nb, dict) else None
    if not name:
        return None, "not a submission of a known problem set (no otter assignment name in its metadata)"
    return name, ""


def grade_one(path: Path, grader: Path, timeout: float) -> tuple[list[dict], str]:
    """Run otter on one submission: per-question scores, or an empty list and the reason."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = subprocess.run([otter(), "run", "-a", str(grader / "autograder.zip"), "-o", tmp, str(path)],
                                    capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [], f"timed out after {timeout:g} s (an endless loop or a very slow cell?)"
        results = Path(tmp, "results.json")
        if result.returncode != 0 or not results.exists():
            last = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()][-1:]
            return [], f"failed to execute: {last[0] if last else 'no output'}"
        tests = json.loads(results.read_text())["tests"]
    return tests, ""


def grade(folder: Path, output: Path, dist: Path, timeout: float) -> int:
    if not folder.is_dir():
        sys.exit(f"no such folder of submissions: {folder}")
    submissions = sorted(p for p in folder.iterdir() if p.suffix == ".ipynb")
    if not submissions:
        sys.exit(f"no .ipynb files in {folder}")
    rows: list[dict] = []
    for path in submissions:
        student = path.stem
        name, why = problem_set_of(path)
        grader = dist / "autograder" / name if name else None
        if name and not (grader and (grader / "autograder.zip").exists()):
            why = f"problem set {name} has no autograder in {dist / 'autograder'} (run python3 tasks.py assign)"
        if why:
            rows.append({"student": student, "problem_set": name or "", "question": "", "points": "",
                         "possible": "", "total": "", "note": why})
            print(f"{path.name}: {why}", flush=True)
            continue
        scores, why = grade_one(path, grader, timeout)
        qs = json.loads((grader / "questions.json").read_text())
        if why:
            rows.append({"student": student, "problem_set": name, "question": "", "points": "", "possible": "",
                         "total": "", "note": why})
            print(f"{path.name}: {why}", flush=True)
            continue
        by_name = {t["name"]: t for t in scores if "score" in t}
        public = "\n".join(t.get("output", "") for t in scores if "score" not in t)
        total = sum(t["score"] for t in by_name.values())
        for q in qs:
            if q["manual"]:
                rows.append({"student": student, "problem_set": name, "question": q["name"], "points": "",
                             "possible": q["points"], "total": total, "note": "written: graded by hand"})
            else:
                t = by_name.get(q["name"], {"score": 0.0, "max_score": q["points"]})
                passed = f"{q['name']} results: All test cases passed!" in public
                rows.append({"student": student, "problem_set": name, "question": q["name"], "points": t["score"],
                             "possible": t["max_score"], "total": total,
                             "note": "public tests passed" if passed else "public tests failed"})
        auto = sum(q["points"] for q in qs if not q["manual"])
        print(f"{path.name}: {name}, {total:g} of {auto:g} autograded points", flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, output)
    print(f"grades: {output} ({len(submissions)} notebooks)")
    return 0


def student_book(target: Path) -> int:
    """The HTML book with hide_solutions (every solution removed whole), in target; the public build is untouched."""
    from pdf import build_site  # tools/ is on the path: this file runs as a script from there

    html = build_site(solutions=False, out=ROOT / "_build" / "student-src")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(html, target)
    print(f"the student edition is at {target / 'index.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assign", help="student notebooks and autograders for every problem set")
    a.add_argument("sets", nargs="*", help="problem sets (default: all)")
    a.add_argument("--dist", type=Path, default=DIST)
    g = sub.add_parser("grade", help="grade a folder of submitted notebooks into one CSV")
    g.add_argument("folder", type=Path)
    g.add_argument("--output", type=Path, default=None, help="default: FOLDER/grades.csv")
    g.add_argument("--dist", type=Path, default=DIST, help="where `assign` wrote the autograders")
    g.add_argument("--timeout", type=float, default=300, help="seconds one submission may run (default 300)")
    s = sub.add_parser("student-book", help="the book without solutions")
    s.add_argument("--output", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    if args.command == "assign":
        return assign(args.sets, args.dist)
    if args.command == "grade":
        return grade(args.folder, args.output or args.folder / "grades.csv", args.dist, args.timeout)
    return student_book(args.output)


if __name__ == "__main__":
    sys.exit(main())
