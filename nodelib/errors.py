"""Every error nodelib raises on purpose, in one place (and importable from ``nodelib``).

Each message says what was expected and what arrived. The solver errors subclass ``RuntimeError``, the
configuration errors ``ValueError``, so code that catches the built-in types keeps working.
"""
from __future__ import annotations

__all__ = ["StepBudgetExceeded", "StepSizeUnderflow", "RunError", "SelectionUndefined"]


class StepBudgetExceeded(RuntimeError):
    """A solve needed more steps than ``max_steps`` allowed (adaptive: during the solve; fixed: up front)."""


class StepSizeUnderflow(RuntimeError):
    """The adaptive step size shrank to round-off level: the error control cannot be met at that point."""


class RunError(ValueError):
    """An experiment cannot start as asked: a bad setting, missing data, a checkpoint of another run."""


class SelectionUndefined(ValueError):
    """The validation metric that picks the best epoch is NaN or infinite, and no fallback was given."""
