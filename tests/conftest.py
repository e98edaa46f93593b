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
