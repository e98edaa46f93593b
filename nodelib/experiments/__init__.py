"""Full experiments: the GPU-scale (or long-running) side of each chapter.

``python -m nodelib.experiments list`` names every registered experiment (:mod:`.registry`); ``run NAME``
runs one, ``--smoke`` at a size that takes seconds on a CPU. Chapter 5's classifiers (MNIST, SVHN, CIFAR-10,
ECG heartbeats, digits) are trained by the shared loop of :mod:`.runner`: checkpoints every epoch, exact
``--resume``, several GPUs through ``torchrun``, results written atomically as JSON with the command, the
machine and the code revision. The experiments of chapters 2-4 are modules with their own command lines,
also reachable as ``python -m nodelib.experiments.<module> --help``:

- ``solver_speed`` (chapter 1): fixed-step solves, nodelib's time per step against torchdiffeq's, side by side.
- ``adjoint_memory`` (chapter 2): peak memory and time of backpropagation, the adjoint and checkpointing
  as the number of solver steps grows.
- ``adjoint_norms`` (chapter 2): gradient error and backward NFE of the adjoint's error norms (mixed,
  seminorm, one RMS) and of torchdiffeq's, against the width of the network.
- ``spiral_solvers`` (chapter 3): the spiral of Capell et al. (2023) fitted with Euler, RK4 and Dopri5.
- ``latent_spirals`` (chapter 3): a latent ODE on noisy, irregularly sampled spirals, full size.
- ``augmentation_nfe`` (chapter 4): accuracy and forward/backward NFE of plain and augmented Neural ODEs.
- ``ace_physionet`` (chapter 6): PhysioNet 2012 mortality AUC and interpolation MSE of the latent ODE with and
  without co-evolving attention, over seeds; the ACE-ODE-Net image classifiers (``*-ace``, ``*-ace-joint``) run
  in the shared loop, with Algorithm 1's alternating phases and a validation split that picks the best epoch.

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
