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

from typing import Any, Callable, Literal, Mapping, Optional, Sequence, Union, overload

import numpy as np
import torch
from torch import Tensor

from ._impl import checks
from ._impl.dopri5 import integrate_dopri5
from ._impl.fixed_grid import integrate_fixed, step_grid
from ._impl.methods import ADAPTIVE_METHODS, FIXED_STEP_METHODS, TABLEAUS, check_method
from ._impl.rk import ButcherTableau, rk_step
from ._impl.stats import SolveStats
from ._impl.structure import State, Structure
from .errors import SolverError, StepBudgetExceeded, StepSizeUnderflow

__all__ = [
    "odeint", "SolveStats", "SolverError", "StepBudgetExceeded", "StepSizeUnderflow", "estimate_order",
    "ButcherTableau", "rk_step", "TABLEAUS", "FIXED_STEP_METHODS", "ADAPTIVE_METHODS", "check_method",
]

# The method lists live in nodelib._impl.methods (one place); TABLEAUS is every method's Butcher tableau by
# name, with which and :func:`rk_step` a reader can take steps of any of them by hand.
OPTION_KEYS = ("step_size", "max_num_steps", "first_step")
Tolerance = Union[float, Sequence[float]]


def merge_options(step_size: Optional[float], max_steps: int, options: Optional[Mapping[str, Any]]
                  ) -> tuple[Optional[float], int, Optional[float]]:
    """``(step_size, max_steps, first_step)`` from the keyword arguments and a torchdiffeq-style options dict."""
    first_step = None
    if options is not None:
        unknown = set(options) - set(OPTION_KEYS)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; options may hold {sorted(OPTION_KEYS)}")
        if "step_size" in options:
            if step_size is not None:
                raise ValueError("step_size was given twice, as an argument and in options; give it once")
            step_size = options["step_size"]
        max_steps = options.get("max_num_steps", max_steps)
        first_step = options.get("first_step")
    return step_size, max_steps, first_step


def solve_flat(
    func: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Tensor,
    method: str,
    rtol: Union[float, Tensor],
    atol: Union[float, Tensor],
    step_size: Optional[float],
    max_steps: int,
    first_step: Optional[float],
    stats: SolveStats,
    norm: Optional[Callable[[Tensor], Tensor]] = None,
) -> Tensor:
    """The solve itself, on one tensor with checked inputs (shared by :func:`odeint` and the adjoint)."""
    counted = stats.counter.wrap(checks.checked_func(func, y0))
    max_steps = checks.check_max_steps(max_steps)
    if method in FIXED_STEP_METHODS:
        step_size = checks.check_positive("step_size", step_size, allow_none=True)
        return integrate_fixed(counted, FIXED_STEP_METHODS[method], y0, t, step_size, stats, max_steps)
    if step_size is not None:
        raise ValueError(
            f"step_size applies to the fixed-step methods {sorted(FIXED_STEP_METHODS)}; "
            f"{method!r} chooses its own steps from rtol and atol (use options={{'first_step': h}} "
            "to set only the first)"
        )
    first_step = checks.check_positive("first_step", first_step, allow_none=True)
    if t.requires_grad and torch.is_grad_enabled() and len(t) > 1:
        return _with_time_gradient(counted, y0, t, lambda start: integrate_dopri5(
            counted, start, t.detach(), rtol, atol, max_steps, first_step, stats, norm))
    return integrate_dopri5(counted, y0, t, rtol, atol, max_steps, first_step, stats, norm)


def _with_time_gradient(func: Callable[[Tensor, Tensor], Tensor], y0: Tensor, t: Tensor,
                        solve: Callable[[Tensor], Tensor]) -> Tensor:
    """``solve(y0)``, with ``dL/dt`` attached: the adaptive solver picks its steps outside autograd's view.

    Two first-order facts about the exact solution give the time gradients. Moving an output time ``t_j``
    (``j >= 1``) moves the output along the solution, ``dy_j/dt_j = f(t_j, y_j)``; and starting at ``t_0 + δ``
    from ``y0`` is, to first order, starting at ``t_0`` from ``y0 - δ f(t_0, y0)``. Both enter as terms
    ``(t - t.detach()) * f``: zero in value, so the solution is unchanged, with derivative ``f`` in ``t``.
    The result is the time gradient of the exact solution, evaluated on the computed one (as the adjoint's
    is), for ``len(t)`` extra evaluations of ``f``.
    """
    shift = t - t.detach()  # zero, with d(shift)/dt = 1
    with torch.no_grad():
        f0 = func(t[0].detach(), y0.detach())
    ys = solve(y0 - shift[0] * f0)
    with torch.no_grad():
        ends = torch.stack([func(t[j].detach(), ys[j].detach()) for j in range(1, len(t))])
    moved = ys[1:] + shift[1:].reshape(-1, *([1] * y0.dim())) * ends
    return torch.cat([y0.unsqueeze(0), moved])


@overload
def odeint(func: Callable[[Tensor, Any], Any], y0: Tensor, t: Union[Tensor, Sequence[float]], *,
           method: str = ..., rtol: Tolerance = ..., atol: Tolerance = ..., step_size: Optional[float] = ...,
           max_steps: int = ..., options: Optional[Mapping[str, Any]] = ...,
           return_stats: Literal[False] = ...) -> Tensor: ...
@overload
def odeint(func: Callable[[Tensor, Any], Any], y0: tuple[Tensor, ...], t: Union[Tensor, Sequence[float]], *,
           method: str = ..., rtol: Tolerance = ..., atol: Tolerance = ..., step_size: Optional[float] = ...,
           max_steps: int = ..., options: Optional[Mapping[str, Any]] = ...,
           return_stats: Literal[False] = ...) -> tuple[Tensor, ...]: ...
@overload
def odeint(func: Callable[[Tensor, Any], Any], y0: Tensor, t: Union[Tensor, Sequence[float]], *,
           method: str = ..., rtol: Tolerance = ..., atol: Tolerance = ..., step_size: Optional[float] = ...,
           max_steps: int = ..., options: Optional[Mapping[str, Any]] = ...,
           return_stats: Literal[True]) -> tuple[Tensor, SolveStats]: ...
@overload
def odeint(func: Callable[[Tensor, Any], Any], y0: tuple[Tensor, ...], t: Union[Tensor, Sequence[float]], *,
           method: str = ..., rtol: Tolerance = ..., atol: Tolerance = ..., step_size: Optional[float] = ...,
           max_steps: int = ..., options: Optional[Mapping[str, Any]] = ...,
           return_stats: Literal[True]) -> tuple[tuple[Tensor, ...], SolveStats]: ...
def odeint(
    func: Callable[[Tensor, Any], Any],
    y0: State,
    t: Union[Tensor, Sequence[float]],
    *,
    method: str = "dopri5",
    rtol: Tolerance = 1e-7,
    atol: Tolerance = 1e-9,
    step_size: Optional[float] = None,
    max_steps: int = 100_000,
    options: Optional[Mapping[str, Any]] = None,
    return_stats: bool = False,
) -> Union[State, tuple[State, SolveStats]]:
    """Solve ``dy/dt = func(t, y)``, ``y(t[0]) = y0``, and return ``y`` at every time in ``t``.

    Args:
        func: the vector field, called as ``func(t, y)`` with a 0-dim time tensor and a state like y0.
        y0: the initial state: a floating-point tensor of any shape, or a tuple of such tensors (one dtype
            and device) for a structured state, in which case ``func`` returns a tuple of the same shapes.
        t: 1-D, strictly increasing or strictly decreasing times; ``t[0]`` is the initial time. It is cast to
            y0's dtype (an error says so if that cast would make two times equal). A single time returns y0
            (as ``y0[None]``), as torchdiffeq does.
        method: ``"euler"``, ``"midpoint"``, ``"rk4"``, ``"rk38"`` (fixed steps) or ``"dopri5"`` (adaptive).
        rtol, atol: relative and absolute tolerances of the adaptive method: numbers, or for a tuple state
            one number per part. A tuple state's error is measured part by part (the largest of the parts'
            RMS norms), so a small part is held to its tolerance however large the others are.
        step_size: the step of a fixed-step method; without it, the steps are the gaps of ``t``.
        max_steps: budget of steps. Adaptive: accepted plus rejected; fixed: the grid is refused up front if
            it has more steps than this.
        options: torchdiffeq-style options, ``{"step_size", "max_num_steps", "first_step"}``, so that a call
            written for ``torchdiffeq.odeint`` runs unchanged.
        return_stats: also return a :class:`SolveStats` (function evaluations, steps, step sizes).

    Returns:
        A tensor of shape ``(len(t), *y0.shape)`` (a tuple of them for a tuple state), and the
        :class:`SolveStats` if asked for.

    Output times and gradients, as in torchdiffeq:

    - With ``step_size``, a fixed-step method steps from ``t[0]`` in steps of ``h`` (the last one shortened to
      land on ``t[-1]``) and reads an output time that falls *inside* a step off the straight line between the
      step's ends: linear interpolation, first-order accurate, whatever the method's order. dopri5 fills such
      times with its fourth-order dense output.
    - ``loss.backward()`` differentiates through every operation of the solve (backpropagation), so
      gradients reach ``y0`` and the field's parameters. Times: a fixed-step solve differentiates its grid
      (the exact gradient of the discrete computation in ``t``). The adaptive solver chooses its steps with
      Python floats, outside the graph; when ``t.requires_grad`` it attaches the time gradient of the exact
      solution instead (``dL/dt_j = ∂L/∂y_j · f(t_j, y_j)`` for an output time, and the matching term for
      ``t[0]``), which costs ``len(t)`` extra evaluations of ``func``, as torchdiffeq and
      :func:`nodelib.adjoint.odeint_adjoint` give it.

    Raises:
        TypeError, ValueError: for input that is not what is described above (the message says what),
            including a float16 or bfloat16 state (nodelib's solvers work in float32 and float64).
        StepBudgetExceeded: when the solve needs more than ``max_steps`` steps.
        StepSizeUnderflow: when the adaptive step size shrinks to round-off (the error control cannot be met).
        FloatingPointError: when a fixed-step solution becomes NaN or infinite (an unstable step size), or the
            field itself returns NaN or infinite values.
    """
    structure = Structure(y0)
    flat0 = structure.flatten(y0)
    t = checks.check_time_grid(t, flat0)
    method = check_method(method)
    step_size, max_steps, first_step = merge_options(step_size, max_steps, options)
    stats = SolveStats(method=method)
    ys = solve_flat(structure.wrap(func), flat0, t, method, structure.tolerance("rtol", rtol),
                    structure.tolerance("atol", atol), step_size, max_steps, first_step, stats, structure.norm())
    out = structure.unflatten(ys)
    return (out, stats) if return_stats else out


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
