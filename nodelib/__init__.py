"""nodelib: the PyTorch package behind the interactive textbook on Neural ODEs.

One module per concept, in layers (each imports only from the layers below it; ``pyproject.toml`` states the
contract and the test suite checks it with import-linter):

1. **solver core**: :mod:`nodelib.solvers` (chapter 1's teaching solvers, torchdiffeq's calling convention),
   :mod:`nodelib.adjoint` and :mod:`nodelib.memory` (chapter 2), :mod:`nodelib.config` (one typed solver
   configuration), :mod:`nodelib.nfe` (one evaluation counter), :mod:`nodelib.blocks` (vector fields, ResNets and
   the one ODE block), :mod:`nodelib.timevarying`, :mod:`nodelib.augment`, :mod:`nodelib.fast`, and underneath
   :mod:`nodelib.errors`, :mod:`nodelib.utils`, :mod:`nodelib.report` (what chapters print and glue);
2. **models**: :mod:`nodelib.layers` (the convolutional pieces), :mod:`nodelib.classification` (chapter 5, the
   registries of bodies and networks), :mod:`nodelib.latent` (chapter 3), :mod:`nodelib.ace` (chapter 6),
   :mod:`nodelib.anodev2` (chapter 7), :mod:`nodelib.gode` (chapter 8); each chapter's module registers its
   own classifier bodies or networks;
3. **data**: :mod:`nodelib.data` (toy systems), :mod:`nodelib.datasets` (every data set with its loader);
4. **training**: :mod:`nodelib.training` (the one training loop), :mod:`nodelib.sweep` (the one sweep driver),
   :mod:`nodelib.claims` (the one rule for verdicts);
5. **experiments**: :mod:`nodelib.experiments` (``python -m nodelib.experiments``) and their recorded results;
   :mod:`nodelib.plotting` for the chapters' figures.

The names below are the everyday surface (the solvers, the ODE block and its configuration, and the solver
errors of :mod:`nodelib.errors`); everything else is reached through its module.
"""
from . import ace, anodev2, gode  # noqa: F401  (each registers its classifier bodies or networks)
from .adjoint import odeint_adjoint, odeint_checkpointed
from .blocks import ODEBlock
from .config import SolverConfig
from .errors import RunError, SelectionUndefined, SolverError, StepBudgetExceeded, StepSizeUnderflow
from .solvers import SolveStats, odeint
from .utils import seed_everything

__all__ = [
    "odeint", "odeint_adjoint", "odeint_checkpointed", "ODEBlock", "SolverConfig", "SolveStats", "SolverError",
    "StepBudgetExceeded", "StepSizeUnderflow", "RunError", "SelectionUndefined", "seed_everything",
]
__version__ = "0.1.0"
