"""Full experiments: the GPU-scale (or long-running) side of each chapter.

Each experiment is a module runnable as ``python -m nodelib.experiments.<name> --help``. They share the
conventions of :mod:`nodelib.experiments._common`: a ``--device`` option (default: the best available),
progress bars, and results written atomically as JSON that records the machine, the software versions and
the code revision. The chapters read the recorded files and name the machine that produced them.

- ``adjoint_memory`` (chapter 2): peak memory and time of backpropagation, the adjoint and checkpointing
  as the number of solver steps grows.
- ``spiral_solvers`` (chapter 3): the spiral of Capell et al. (2023) fitted with Euler, RK4 and Dopri5.
- ``latent_spirals`` (chapter 3): a latent ODE on noisy, irregularly sampled spirals, full size.
- ``augmentation_nfe`` (chapter 4): accuracy and forward/backward NFE of plain and augmented Neural ODEs.

Recorded runs that the book shows are shipped with the package in ``nodelib/experiments/results/`` (so that
a chapter opened on Colab finds them too) and read with :func:`load_result`.
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_result(name: str) -> dict[str, Any]:
    """A recorded result shipped with nodelib, e.g. ``load_result("adjoint_memory_cpu")``."""
    folder = resources.files(__name__) / "results"
    available = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))
    if name not in available:
        raise ValueError(f"no recorded result {name!r}; available: {available}")
    return json.loads((folder / f"{name}.json").read_text())
