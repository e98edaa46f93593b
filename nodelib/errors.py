"""Every error class that nodelib's solver core raises, in one place (also importable from :mod:`nodelib`).

The solvers raise Python's own exceptions where one fits: ``TypeError`` and ``ValueError`` for input that is
not what the documentation describes (the message says what arrived and what was expected), and
``FloatingPointError`` when a solution or the vector field becomes NaN or infinite. The classes below are
the failures that are particular to solving an ODE numerically.
"""
from __future__ import annotations

__all__ = ["SolverError", "StepBudgetExceeded", "StepSizeUnderflow"]


class SolverError(RuntimeError):
    """Base class of the numerical failures of nodelib's solvers (catch this to catch them all)."""


class StepBudgetExceeded(SolverError):
    """A solve needed more steps than ``max_steps`` allowed (adaptive: during the solve; fixed: up front)."""


class StepSizeUnderflow(SolverError):
    """The adaptive step size shrank to round-off level: the error control cannot be met at that point."""
