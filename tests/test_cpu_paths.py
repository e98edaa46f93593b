"""The chapters' checked numbers read the same on another CPU code path than the machine's own.

The suite runs every chapter under nbval on the machine's own path (AVX-512 or AVX2 for PyTorch's kernels, MKL and
oneDNN). These tests run each chapter again with the three libraries forced onto another path (tools/cpupaths.py:
AVX2 on an AVX-512 machine, plain SSE on an AVX2 one), so that a checked cell that prints round-off, or a number
that training amplifies from round-off, fails here instead of on a reader's laptop or the next CI machine. On a
processor with a single path (ARM) they skip and say why.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import CHAPTERS, NEEDS_PHYSIONET, ROOT, load_tool, physionet_reachable

cpupaths = load_tool("cpupaths")
OTHER, WHY = cpupaths.other_path()
pytestmark = pytest.mark.slow


def test_the_other_path_is_really_taken():
    """Forcing the variables changes what a fresh process runs (else the chapter runs below would prove nothing)."""
    if OTHER is None:
        pytest.skip(WHY)
    own = cpupaths.describe(cpupaths.own_environment())
    other = cpupaths.describe(cpupaths.own_environment() | OTHER)
    assert own["aten"] != other["aten"], (own, other)
    if "onednn" in own:
        assert own["onednn"] != other["onednn"], (own, other)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_checked_cells_match_on_another_cpu_path(path):
    if OTHER is None:
        pytest.skip(WHY)
    if path.name in NEEDS_PHYSIONET and not physionet_reachable():
        pytest.skip("PhysioNet 2012 is neither under the data root nor downloadable")
    env = cpupaths.own_environment() | OTHER | {"MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-p",
         "no:xdist", "-q", "-o", "addopts=", str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, (
        f"{path.name} prints other checked numbers on the {WHY.split(' (')[0]} path "
        f"({cpupaths.summary(cpupaths.describe(env))}):\n"
        + result.stdout[-6000:]
    )
