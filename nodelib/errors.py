"""Every error class nodelib raises on purpose, in one place (also importable from :mod:`nodelib`).

nodelib raises Python's own exceptions where one fits: ``TypeError`` and ``ValueError`` for input that is not
what the documentation describes (the message says what arrived and what was expected), and
``FloatingPointError`` when a solution, a vector field or a loss becomes NaN or infinite. The classes below are
the failures particular to nodelib: those of solving an ODE numerically (:class:`SolverError`, a
``RuntimeError``), and those of an experiment that cannot start or a run that cannot select its epoch (both
``ValueError``).
"""
from __future__ import annotations

__all__ = ["SolverError", "StepBudgetExceeded", "StepSizeUnderflow", "RunError", "SelectionUndefined"]


class SolverError(RuntimeError):
    """Base class of the numerical failures of nodelib's solvers (catch this to catch them all)."""


class StepBudgetExceeded(SolverError):
    """A solve needed more steps than ``max_steps`` allowed (adaptive: during the solve; fixed: up front)."""


class StepSizeUnderflow(SolverError):
    """The adaptive step size shrank to round-off level: the error control cannot be met at that point."""


class RunError(ValueError):
    """An experiment cannot start as asked: a bad setting, missing data, a checkpoint of another run."""


class SelectionUndefined(ValueError):
    """The validation metric that picks the best epoch is NaN or infinite, and no fallback was given."""
