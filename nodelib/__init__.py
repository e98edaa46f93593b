"""nodelib: the PyTorch package behind the interactive textbook on Neural ODEs.

One module per concept, named after what it teaches:

- :mod:`nodelib.solvers` (chapter 1): teaching ODE solvers with torchdiffeq's calling convention;
- :mod:`nodelib.blocks` (chapter 1): vector fields, residual blocks, ResNets and ODE blocks;
- :mod:`nodelib.adjoint`, :mod:`nodelib.memory` (chapter 2): adjoint and checkpointed gradients, memory;
- :mod:`nodelib.data`, :mod:`nodelib.training`, :mod:`nodelib.latent` (chapter 3): data, the shared training
  loop, the latent ODE;
- :mod:`nodelib.augment`, :mod:`nodelib.nfe` (chapter 4): augmentation, forward/backward NFE counting;
- :mod:`nodelib.classification`, :mod:`nodelib.datasets` (chapter 5): ResNet, ODE-Net, RK-Net and augmented
  ODE-Net classifiers for images and signals; digits, heartbeats and the image benchmarks;
  :mod:`nodelib.fast`: fixed-step solves unrolled for ``torch.compile`` and CUDA graphs (same values and
  gradients as the eager path);
- :mod:`nodelib.ace` (chapter 6): attentive co-evolving ODEs (pairwise and elementwise attention, Algorithm 1's
  alternating training, the ACE-ODE-Net body and an attentive latent ODE for PhysioNet 2012);
- :mod:`nodelib.anodev2` (chapter 7): ANODEV2's reaction-diffusion-advection weight evolution;
- :mod:`nodelib.gode` (chapter 8): Neural-GODE's B-spline weights over depth, the convt layer and field, and the
  generalized-ODE view (exponential families, the regressor of Eq. 5);
- :mod:`nodelib.timevarying` (chapters 1, 7, 8): parameters that vary with time;
- :mod:`nodelib.experiments`: the full experiments (``python -m nodelib.experiments``) and their recorded results;
- :mod:`nodelib.plotting`: trajectories, vector fields and convergence plots;
- :mod:`nodelib.utils`: seeding, device selection, parameter counts.

The names below are the everyday surface (the solvers, the ODE block and its configuration, and the solver
errors of :mod:`nodelib.errors`); everything else is reached through its module.
"""
from .adjoint import odeint_adjoint, odeint_checkpointed
from .blocks import ODEBlock
from .config import SolverConfig
from .errors import SolverError, StepBudgetExceeded, StepSizeUnderflow
from .solvers import SolveStats, odeint
from .utils import seed_everything

__all__ = [
    "odeint", "odeint_adjoint", "odeint_checkpointed", "ODEBlock", "SolverConfig", "SolveStats",
    "SolverError", "StepBudgetExceeded", "StepSizeUnderflow", "seed_everything",
]
__version__ = "0.1.0"
