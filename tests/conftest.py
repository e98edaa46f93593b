from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if SHARED_DATA.is_dir():
    # the real data sets beside the clone (CI, development): loaders and notebooks find them through the data root
    os.environ.setdefault("NODELIB_DATA", str(SHARED_DATA))
CHAPTERS = sorted(p for p in (ROOT / "chapters").glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


NEEDS_PHYSIONET = ("06_ace_node.ipynb", "08_neural_gode.ipynb")  # chapters that read PhysioNet 2012 (downloaded when online)


def _physionet_reachable() -> bool:
    root = Path(os.environ.get("NODELIB_DATA", ROOT / "chapters" / "data"))
    if any((folder / "Outcomes-a.txt").is_file() for folder in (root / "physionet2012", root)):
        return True
    import socket

    try:
        socket.create_connection(("physionet.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    """A chapter that reads PhysioNet's files is skipped, with the reason, on a machine that has neither the files
    nor the internet (CI and development have ../shared/data; a reader online downloads them)."""
    needing = [item for item in items if Path(str(item.fspath)).name in NEEDS_PHYSIONET]
    if needing and not _physionet_reachable():
        skip = pytest.mark.skip(reason="PhysioNet 2012 is neither under the data root (NODELIB_DATA) nor downloadable "
                                       "(physionet.org unreachable)")
        for item in needing:
            item.add_marker(skip)
