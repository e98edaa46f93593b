"""The one list of solver methods: nodelib's tableaus by name, and which names take fixed steps on either backend.

Everything else that needs to know whether a method is fixed-step (the solvers, the adjoint, checkpointing,
:class:`nodelib.SolverConfig`, the experiments) asks here.
"""
from __future__ import annotations

from typing import Any

from .rk import DOPRI5, EULER, MIDPOINT, RK4, RK38, ButcherTableau

#: nodelib's fixed-step methods, by name.
FIXED_STEP_METHODS: dict[str, ButcherTableau] = {tb.name: tb for tb in (EULER, MIDPOINT, RK4, RK38)}
#: nodelib's adaptive methods, by name.
ADAPTIVE_METHODS: dict[str, ButcherTableau] = {DOPRI5.name: DOPRI5}
#: Every nodelib method's Butcher tableau by name.
TABLEAUS: dict[str, ButcherTableau] = {**FIXED_STEP_METHODS, **ADAPTIVE_METHODS}
#: torchdiffeq's fixed-grid methods (the names ``backend="torchdiffeq"`` takes; its ``rk4`` is the 3/8 rule).
TORCHDIFFEQ_FIXED_STEP_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams",
                                  "fixed_adams")
#: Every method name, on either backend, that takes fixed steps; any other name is adaptive.
FIXED_METHODS: tuple[str, ...] = tuple(dict.fromkeys([*FIXED_STEP_METHODS, *TORCHDIFFEQ_FIXED_STEP_METHODS]))

#: How the adjoint's adaptive backward solve measures the error of the augmented state (z, a, dL/dθ):
#: see :mod:`nodelib.adjoint`.
ADJOINT_NORMS = ("mixed", "seminorm", "rms")


def is_fixed_step(method: str) -> bool:
    """Whether ``method`` (a nodelib or a torchdiffeq name) takes fixed steps."""
    return method in FIXED_METHODS


def check_method(method: Any) -> str:
    """``method`` if nodelib's solvers know it; otherwise a ValueError that lists the known ones."""
    if not isinstance(method, str) or method not in TABLEAUS:
        known = ", ".join(repr(m) for m in TABLEAUS)
        raise ValueError(f"unknown method {method!r}; nodelib's solvers are {known}")
    return method
