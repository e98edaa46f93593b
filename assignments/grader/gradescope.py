"""Gradescope's entry point: ``run_autograder`` runs ``python -I gradescope.py /autograder``.

The submission (``/autograder/submission/*.ipynb``) is graded by the same engine as local grading: student code in a
sandbox, as the unprivileged user ``nobody`` (Gradescope runs this as root; ``setup.sh`` made ``source/`` readable by
root only), the hidden tests in a separate checker process. ``/autograder/results/results.json`` gets one test per
code question (the hidden tests' outcome in its output, their messages only if ``gradescope.json`` says
``"release": "messages"``) and, for each written question, a 0-point entry that shows the answer to the graders.
The written answers are also exported as a PDF (``results/written-answers.pdf``) and, when ``gradescope.json`` holds a
``token``, ``course_id`` and ``assignment_id``, uploaded to that (PDF) assignment for manual grading, as otter does.
"""
from __future__ import annotations

import json
import sys
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine  # noqa: E402
import written  # noqa: E402


def upload_pdf(config: dict, pdf: Path, emails: list[str]) -> str:
    """POST the PDF to Gradescope's API for each student (the request otter's APIClient makes)."""
    base = config.get("api_url", "https://www.gradescope.com").rstrip("/")
    url = f"{base}/api/v1/courses/{config['course_id']}/assignments/{config['assignment_id']}/submissions"
    done = []
    for email in emails:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"owner_email\"\r\n\r\n{email}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"pdf_attachment\"; filename=\"{pdf.name}\"\r\n"
                f"Content-Type: application/pdf\r\n\r\n").encode() + pdf.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "access-token": config["token"], "Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            if response.status != 200:
                raise RuntimeError(f"upload for {email}: HTTP {response.status}")
        done.append(email)
    return f"written answers uploaded for {', '.join(done)}"


def main(root: Path) -> int:
    source, submission, results = root / "source", root / "submission", root / "results"
    results.mkdir(parents=True, exist_ok=True)
    config = json.loads((source / "gradescope.json").read_text()) if (source / "gradescope.json").exists() else {}
    started = time.perf_counter()
    out: dict = {"tests": [], "score": 0.0}
    notebooks = sorted(p for p in submission.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if len(notebooks) != 1:
        out["output"] = (f"Expected exactly one notebook (.ipynb) in the submission, found {len(notebooks)}: "
                         f"{', '.join(p.name for p in notebooks) or 'none'}.")
        (results / "results.json").write_text(json.dumps(out, indent=1))
        return 0
    bundle = engine.Bundle(source)
    try:
        nb = json.loads(notebooks[0].read_text(encoding="utf-8"))
        if not isinstance(nb, dict):
            raise ValueError("not a notebook")
    except (UnicodeDecodeError, ValueError) as err:
        out["output"] = f"{notebooks[0].name} is not a readable notebook ({err})."
        (results / "results.json").write_text(json.dumps(out, indent=1))
        return 0
    grader = engine.Engine({bundle.name: bundle}, secrets=[source, submission, results],
                           timeout=float(config.get("timeout", 300)))
    (results / "log.txt").write_text(f"{notebooks[0].name}: problem set {bundle.name}\nsandbox: {grader.confinement}\n")
    try:
        run = grader.grade(nb, bundle, results / "log.txt")
    finally:
        grader.close()
    release = config.get("release", "scores")
    public = run["public"]
    for q in bundle.questions:
        if q["manual"]:
            continue
        tests = [t for t in run["tests"] if t["question"] == q["name"]]
        passed = [t for t in tests if t["passed"]]
        lines = [f"Hidden tests passed: {len(passed)} of {len(tests)}."]
        if q["name"] in public:
            lines.append(f"Your own checks (grader.check): {'passed' if public[q['name']]['passed'] else 'failed'}.")
        if release in ("hints", "messages"):
            for t in tests:
                if not t["passed"]:
                    lines.append(f"- {t['hint'] or t['name']}" + (f": {t['message']}" if release == "messages" else ""))
        out["tests"].append({"name": q["name"], "score": sum(t["points"] for t in tests), "max_score": q["points"],
                             "output": "\n".join(lines), "visibility": config.get("visibility", "visible")})
    manual = [q["name"] for q in bundle.questions if q["manual"]]
    if manual:
        answers = written.written_answers(nb, manual)
        for name in manual:
            out["tests"].append({"name": f"{name} (written, graded by hand)", "score": 0, "max_score": 0,
                                 "output": answers[name]["answer"] or "(no answer)", "visibility": "hidden"})
        pdf = written.write_pdf(results / "written-answers.pdf", bundle.name, answers)
        if config.get("token") and config.get("course_id") and config.get("assignment_id"):
            try:
                meta = json.loads((root / "submission_metadata.json").read_text())
                emails = [u["email"] for u in meta.get("users", []) if u.get("email")]
                out["output"] = upload_pdf(config, pdf, emails)
            except Exception as err:  # the autograded score still counts
                out["output"] = f"the written answers could not be uploaded: {err}"
    notes = [run["note"]] if run["note"] else []
    if run["tampered"]:
        notes.append("the autograder's files changed while the notebook ran (restored)")
    if notes:
        out["output"] = "; ".join(notes + ([out["output"]] if out.get("output") else []))
    out["score"] = sum(t["score"] for t in out["tests"])
    out["execution_time"] = round(time.perf_counter() - started, 1)
    (results / "results.json").write_text(json.dumps(out, indent=1))
    print(f"score {out['score']:g}; {grader.confinement}; {out['execution_time']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "/autograder")))
