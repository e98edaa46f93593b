"""The set-up a reader follows is consistent: README commands, CI, pyproject and environment.yml agree."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import yaml

from conftest import ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_has_every_dependency_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra if not r.startswith("nodelib")}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            have |= {_name(r) for r in dep["pip"] if not r.startswith("-e")}
        else:
            have.add(_name(dep.split("=")[0].replace("pytorch", "torch")))
    assert wanted <= have, f"missing from environment.yml: {sorted(wanted - have)}"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 tasks.py test" in readme and "python3 tasks.py book" in readme
    commands = [line for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert commands[-1].strip() == "exec python3 tasks.py test"


def test_tasks_without_a_command_prints_usage():
    result = subprocess.run([sys.executable, str(ROOT / "tasks.py")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "python3 tasks.py book" in result.stdout


def test_ruff_and_mypy_are_clean():
    """The rule set in pyproject.toml ([tool.ruff.lint]) and mypy over nodelib/ report nothing."""
    paths = ["nodelib", "tests", "tools", "book/_ext", "tasks.py", "conftest.py"]
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *paths], cwd=ROOT, capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout[-3000:]
    mypy = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert mypy.returncode == 0, mypy.stdout[-3000:]


def test_binder_installs_nodelib_after_the_environment():
    """repo2docker builds environment.yml before the repository is copied in: `-e .` there would fail."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert not any(r.startswith("-e") or r.strip() == "." for r in pip), "nodelib belongs in postBuild"
    post = ROOT / "postBuild"
    assert post.exists() and os.access(post, os.X_OK), "postBuild must exist and be executable"
    assert "pip install --no-deps --editable ." in post.read_text()
    assert not (ROOT / "binder").exists(), "a binder/ folder would make repo2docker ignore the root files"


def test_the_layers_of_nodelib_hold():
    """pyproject.toml's import-linter contract: no cycles, no import from a layer above, chapters independent."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    lint = Path(sys.executable).parent / "lint-imports"
    command = [str(lint)] if lint.exists() else [shutil.which("lint-imports") or "lint-imports"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_no_module_takes_a_private_name_from_another():
    """A name that starts with an underscore belongs to its module; another module imports only public names
    (the package nodelib._impl holds the solver internals and is imported by its public functions' names)."""
    import ast

    offenders = []
    for path in (ROOT / "nodelib").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("nodelib")):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                if private:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {', '.join(private)}")
    assert not offenders, offenders
