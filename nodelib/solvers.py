"""Teaching ODE solvers (chapter 1), called like ``torchdiffeq.odeint`` so the two can be swapped.

>>> import torch
>>> from nodelib import odeint
>>> A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
>>> t = torch.linspace(0, 1, 11, dtype=torch.float64)
>>> ys, stats = odeint(lambda t, y: y @ A.T, torch.tensor([2.0, 0.0], dtype=torch.float64), t,
...                    method="rk4", step_size=0.05, return_stats=True)
>>> ys.shape, stats.nfe
(torch.Size([11, 2]), 80)

Methods: ``"euler"`` (order 1), ``"midpoint"`` (2), ``"rk4"`` (classical, 4), ``"rk38"`` (Kutta's 3/8 rule, 4;
what torchdiffeq calls ``"rk4"``) take fixed steps; ``"dopri5"`` (Dormand–Prince 5(4)) adapts its steps
to the tolerances ``rtol`` and ``atol``. Everything is written in plain PyTorch operations, so
``loss.backward()`` differentiates through the solve.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ._impl import checks
from ._impl.dopri5 import StepBudgetExceeded, integrate_dopri5
from ._impl.fixed_grid import integrate_fixed, step_grid
from ._impl.rk import DOPRI5, EULER, MIDPOINT, RK4, RK38, ButcherTableau, rk_step
from ._impl.stats import SolveStats

__all__ = [
    "odeint", "SolveStats", "StepBudgetExceeded", "estimate_order",
    "ButcherTableau", "rk_step", "TABLEAUS", "FIXED_STEP_METHODS", "ADAPTIVE_METHODS",
]

FIXED_STEP_METHODS: dict[str, ButcherTableau] = {tb.name: tb for tb in (EULER, MIDPOINT, RK4, RK38)}
ADAPTIVE_METHODS: dict[str, ButcherTableau] = {DOPRI5.name: DOPRI5}
#: Every method's Butcher tableau by name; with :func:`rk_step` a reader can take steps of any of them by hand.
TABLEAUS: dict[str, ButcherTableau] = {**FIXED_STEP_METHODS, **ADAPTIVE_METHODS}
_OPTION_KEYS = {"step_size", "max_num_steps", "first_step"}


def odeint(
    func: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Union[Tensor, Sequence[float]],
    *,
    method: str = "dopri5",
    rtol: float = 1e-7,
    atol: float = 1e-9,
    step_size: Optional[float] = None,
    max_steps: int = 10_000,
    options: Optional[Mapping[str, Any]] = None,
    return_stats: bool = False,
) -> Union[Tensor, tuple[Tensor, SolveStats]]:
    """Solve ``dy/dt = func(t, y)``, ``y(t[0]) = y0``, and return ``y`` at every time in ``t``.

    Args:
        func: the vector field, called as ``func(t, y)`` with a 0-dim time tensor and a state of y0's shape.
        y0: the initial state, a floating-point tensor of any shape.
        t: 1-D, strictly increasing or strictly decreasing times; ``t[0]`` is the initial time.
        method: ``"euler"``, ``"midpoint"``, ``"rk4"``, ``"rk38"`` (fixed steps) or ``"dopri5"`` (adaptive).
        rtol, atol: relative and absolute tolerances of the adaptive method.
        step_size: the step of a fixed-step method; without it, the steps are the gaps of ``t``.
        max_steps: budget of steps (accepted plus rejected) for the adaptive method.
        options: torchdiffeq-style options, ``{"step_size", "max_num_steps", "first_step"}``, so that a call
            written for ``torchdiffeq.odeint`` runs unchanged.
        return_stats: also return a :class:`SolveStats` (function evaluations, steps, step sizes).

    Returns:
        A tensor of shape ``(len(t), *y0.shape)``, and the :class:`SolveStats` if asked for.

    Raises:
        TypeError, ValueError: for input that is not what is described above (the message says what).
        StepBudgetExceeded: when the adaptive method needs more than ``max_steps`` steps.
        FloatingPointError: when a fixed-step solution becomes NaN or infinite (an unstable step size).
    """
    y0 = checks.check_state(y0)
    t = checks.check_time_grid(t, y0)
    if not isinstance(method, str) or method not in FIXED_STEP_METHODS and method not in ADAPTIVE_METHODS:
        known = ", ".join(repr(m) for m in [*FIXED_STEP_METHODS, *ADAPTIVE_METHODS])
        raise ValueError(f"unknown method {method!r}; nodelib's solvers are {known}")
    first_step = None
    if options is not None:
        unknown = set(options) - _OPTION_KEYS
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; options may hold {sorted(_OPTION_KEYS)}")
        if "step_size" in options:
            if step_size is not None:
                raise ValueError("step_size was given twice, as an argument and in options; give it once")
            step_size = options["step_size"]
        max_steps = options.get("max_num_steps", max_steps)
        first_step = options.get("first_step")

    stats = SolveStats(method=method)
    counted = stats.counting(checks.checked_func(func, y0))
    if method in FIXED_STEP_METHODS:
        step_size = checks.check_positive("step_size", step_size, allow_none=True)
        ys = integrate_fixed(counted, FIXED_STEP_METHODS[method], y0, t, step_size, stats)
    else:
        if step_size is not None:
            raise ValueError(
                f"step_size applies to the fixed-step methods {sorted(FIXED_STEP_METHODS)}; "
                f"{method!r} chooses its own steps from rtol and atol (use options={{'first_step': h}} "
                "to set only the first)"
            )
        rtol = checks.check_positive("rtol", rtol)
        atol = checks.check_positive("atol", atol)
        max_steps = checks.check_max_steps(max_steps)
        first_step = checks.check_positive("first_step", first_step, allow_none=True)
        ys = integrate_dopri5(counted, y0, t, rtol, atol, max_steps, first_step, stats)
    return (ys, stats) if return_stats else ys


def estimate_order(step_sizes: Sequence[float], errors: Sequence[float]) -> float:
    """The slope of log(error) against log(step size), fitted by least squares: the observed order."""
    h = np.asarray(step_sizes, dtype=float)
    e = np.asarray(errors, dtype=float)
    if h.shape != e.shape or h.ndim != 1 or len(h) < 2:
        raise ValueError(f"need two 1-D sequences of equal length >= 2, got shapes {h.shape} and {e.shape}")
    if (h <= 0).any() or (e <= 0).any():
        raise ValueError("step sizes and errors must be positive to be compared on a log scale")
    slope, _ = np.polyfit(np.log(h), np.log(e), 1)
    return float(slope)


def fixed_step_count(t: Tensor, step_size: Optional[float]) -> int:
    """How many steps a fixed-step method takes over ``t`` with this step size (the grid of :func:`odeint`)."""
    return len(step_grid(torch.as_tensor(t, dtype=torch.float64), step_size)) - 1
