from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if SHARED_DATA.is_dir():
    # the real data sets beside the clone (CI, development): loaders and notebooks find them through the data root
    os.environ.setdefault("NODELIB_DATA", str(SHARED_DATA))
CHAPTERS = sorted(p for p in (ROOT / "chapters").glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def same_random_state_for_every_module() -> None:
    """A module's shared fixtures (built once, before its first test) start from the same random state too."""
    _seed_everything()


@pytest.fixture(autouse=True)
def same_random_state_for_every_test() -> None:
    """Every test starts from the same global random state (torch, NumPy, ``random``), whatever its worker ran
    before it: pytest-xdist shares the files among processes differently from run to run, so a module built from
    the global generator (``nn.Linear``'s initialisation) would otherwise differ between runs and machines. CI once
    failed on a test whose network came out with one time gradient of 4e-4 (its bound: 1e-3)."""
    _seed_everything()


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


NEEDS_PHYSIONET = ("06_ace_node.ipynb", "08_neural_gode.ipynb")  # chapters that read PhysioNet 2012 (downloaded when online)


def requires_data(name: str) -> pytest.MarkDecorator:
    """Skip a test whose data set's files are not under the data root (``../shared/data`` beside the clone, or
    ``NODELIB_DATA``): it says which, and where it looked."""
    from nodelib import datasets

    return pytest.mark.skipif(not datasets.available(name), reason=f"{name} is not under the data root "
                              f"{datasets.data_root()} (set NODELIB_DATA, or put ../shared/data beside the clone)")


def physionet_reachable() -> bool:
    from nodelib import datasets

    if datasets.available("physionet2012"):
        return True
    import socket

    try:
        socket.create_connection(("physionet.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    """A chapter that reads PhysioNet's files is skipped, with the reason, on a machine that has neither the files
    nor the internet (CI and development have ../shared/data; a reader online downloads them). How the tests are
    shared among processes: the repository's root ``conftest.py``."""
    needing = [item for item in items if Path(str(item.fspath)).name in NEEDS_PHYSIONET]
    if needing and not physionet_reachable():
        skip = pytest.mark.skip(reason="PhysioNet 2012 is neither under the data root (NODELIB_DATA) nor downloadable "
                                       "(physionet.org unreachable)")
        for item in needing:
            item.add_marker(skip)


def check_recorded_comparison(name: str, parser, by: str, variants, data: dict) -> tuple:
    # variants: the names every seed must have run (a callable: computed from the parsed command line)
    """A recorded comparison (chapters 7, 8) is what its command says: clean revision, the command line parsed today
    gives the recorded configuration, every variant and seed ran every epoch, the reported epoch is the best
    validation epoch, and the summary follows from the runs. Returns the parsed arguments and the result."""
    import shlex

    from nodelib.experiments.compare import summarise

    from nodelib.experiments import load_result

    recorded = load_result(name)
    assert recorded["complete"] and "+dirty" not in recorded["machine"]["revision"]
    args = parser.parse_args(shlex.split(recorded["command"])[3:])
    expected = {k: (str(v) if hasattr(v, "parent") else v) for k, v in vars(args).items() if k in recorded["config"]}
    assert expected == recorded["config"]
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = variants(args) if callable(variants) else variants
    assert sorted((r[by], r["seed"]) for r in recorded["runs"]) == sorted((v, s) for v in variants for s in seeds)
    assert recorded["data"] == data
    for r in recorded["runs"]:
        assert len(r["history"]) == args.epochs
        best = max(r["history"], key=lambda h: h["validation_accuracy"])
        assert r["best_epoch"] == best["epoch"] and r["test_accuracy_at_best"] == best["test_accuracy"]
    summary = summarise(recorded["runs"], by=by)
    for variant, row in recorded["summary"].items():
        assert row == pytest.approx(summary[variant])
    return args, recorded


def jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    return str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book")


def build(source: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [jupyter_book(), "build", str(source), "--path-output", str(out), "-W", "--keep-going"],
        capture_output=True, text=True, timeout=1800,
    )


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """The book built once per test session, with warnings as errors (tests/test_book.py, test_browser.py)."""
    out = tmp_path_factory.mktemp("book")
    result = build(ROOT, out)
    assert result.returncode == 0, f"book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return out / "_build" / "html"


def load_tool(name: str):
    """A module of tools/ (the book's maintenance scripts, not a package), importable as the scripts see each other."""
    import importlib

    tools = str(ROOT / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    return importlib.import_module(name)
