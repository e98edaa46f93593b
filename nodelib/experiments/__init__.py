"""Full experiments: the GPU-scale (or long-running) side of each chapter.

``python -m nodelib.experiments list`` names every registered experiment (:mod:`.registry`), ``show NAME`` prints
the configuration that will run, ``run NAME`` runs it (``--smoke``: seconds on a CPU). Every experiment is one
kind of thing (:mod:`.base`): a typed configuration, whose fields are the options of ``run NAME``, and a run
function that writes ``result.json`` atomically with the command, the machine and the code revision. The kinds:

- :mod:`.classifier`: one classifier on one data set, trained by nodelib's loop (checkpoints, exact
  ``--resume``, several GPUs through ``torchrun``); chapters 5-8's ``*-resnet``, ``*-odenet``, ``*-ace``,
  ``*-anodev2-*`` and ``*-gode-*`` experiments;
- :mod:`.comparison`: variants x seeds, paired by seed, with the claims they test (``anodev2-compare``,
  ``gode-fashionmnist-compare``, ``gode-mnist5k-compare``, ``mnist5k-ace-compare``); :mod:`.ace_physionet`
  (``physionet-ace``) and
  :mod:`.gode_tables` (``gode-table2`` to ``-table4``) are comparisons too;
- the measurements of chapters 1-4 (:mod:`.solver_speed`, :mod:`.adjoint_memory`, :mod:`.adjoint_norms`,
  :mod:`.spiral_solvers`, :mod:`.latent_spirals`, :mod:`.augmentation_nfe`) and the GPU benchmark
  :mod:`.gpu_speed`.

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
