"""Fixed-step integration: Euler, midpoint, RK4 and the 3/8 rule share one driver.

The grid follows torchdiffeq's convention so that the two packages can be swapped: without a step size
the solver steps exactly from one requested time to the next; with ``step_size=h`` it takes steps of
``h`` from ``t[0]`` (the last one shortened to land on ``t[-1]``) and reads requested times that fall
inside a step off the straight line between the step's ends.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor

from ..errors import StepBudgetExceeded
from .rk import ButcherTableau, rk_step, rk_step_fast
from .stats import SolveStats

Func = Callable[[Tensor, Tensor], Tensor]


def n_fixed_steps(span: float, step_size: float) -> int:
    """ceil(|span| / h), forgiving the last bit of round-off so that 1.0 / 0.1 takes ten steps, not eleven.

    A span that is not a whole number of steps ends in one shorter step (it is never dropped). torchdiffeq's
    grid (``ceil(span / h + 1)`` points) agrees except where round-off puts ``span / h`` a hair above a whole
    number: there it adds a sliver of a step that this grid does not.
    """
    ratio = abs(span) / step_size
    nearest = round(ratio)
    if nearest >= 1 and abs(ratio - nearest) <= 1e-9 * max(1.0, ratio):
        return nearest
    return max(1, math.ceil(ratio))


def step_grid(t: Tensor, step_size: Optional[float], max_steps: Optional[int] = None) -> Tensor:
    """The times at which a fixed-step solver evaluates its state: the one grid builder of nodelib.

    Without a step size the steps are the gaps of ``t``; with ``step_size=h`` they are ``t[0] + k h``, the last
    point replaced by ``t[-1]``. A grid of more than ``max_steps`` steps is refused before anything is built.
    """
    if step_size is None or len(t) == 1:
        return t
    span = (t[-1] - t[0]).item()
    n_steps = n_fixed_steps(span, step_size)
    if max_steps is not None and n_steps > max_steps:
        raise StepBudgetExceeded(
            f"a fixed step of {step_size:g} over [{t[0].item():g}, {t[-1].item():g}] takes {n_steps:,} steps, more than "
            f"max_steps={max_steps:,}; use a larger step_size, or raise max_steps if you mean it"
        )
    direction = 1.0 if span > 0 else -1.0
    k = torch.arange(n_steps + 1, dtype=t.dtype, device=t.device)
    grid = t[0] + k * (direction * step_size)
    return torch.cat([grid[:-1], t[-1:]])


def outputs_per_step(t: Tensor, grid: Tensor) -> list[list[int]]:
    """For each step ``[grid[i], grid[i+1]]``, the indices ``j >= 1`` of the requested times it produces."""
    forward = bool(t[-1] > t[0])
    times, ends = t.tolist(), grid.tolist()
    per_step: list[list[int]] = [[] for _ in range(len(ends) - 1)]
    j = 1
    for i in range(len(ends) - 1):
        while j < len(times) and ((times[j] <= ends[i + 1]) if forward else (times[j] >= ends[i + 1])):
            per_step[i].append(j)
            j += 1
    return per_step


#: steps between two checks that the solution is still finite (a check costs about as much as a small step;
#: NaN and infinity, once in the state, stay there, so a blow-up is never missed, only reported late)
CHECK_EVERY = 32


def run_steps(
    func: Func,
    tableau: ButcherTableau,
    y: Tensor,
    t: Tensor,
    grid: Tensor,
    steps: range,
    per_step: list[list[int]],
    stats: Optional[SolveStats],
) -> tuple[Tensor, list[Tensor]]:
    """Take the steps ``steps`` of the grid from state ``y``; return the last state and the outputs met on the way.

    When the grid carries a gradient (``t.requires_grad``, so that ``dL/dt`` is wanted), each step is
    :func:`~nodelib._impl.rk.rk_step` with a tensor step size, so autograd sees how the times enter. Otherwise
    the products of the step sizes and the coefficients are computed for all steps in one multiplication and
    each step is :func:`~nodelib._impl.rk.rk_step_fast`: the same values, bit for bit, in fewer tensor
    operations. With the per-step checks and bookkeeping taken out of the loop (finiteness every
    ``CHECK_EVERY`` steps, the step record once at the end), this makes the fixed-step solves faster per step
    than torchdiffeq's (``python -m nodelib.experiments.solver_speed``).
    """
    if not steps:
        return y, []
    ends, times = grid.tolist(), t.tolist()
    differentiable_times = grid.requires_grad and torch.is_grad_enabled()
    scaled = None
    if not differentiable_times:  # every step's products h * coefficient in one multiplication
        first, stop = steps.start, steps.stop
        h = grid[first + 1 : stop + 1] - grid[first:stop]
        scaled = h.unsqueeze(1) * tableau.plan.vector(grid.dtype, grid.device)
    outputs: list[Tensor] = []
    checked_from = steps.start  # the first step since the last finiteness check
    t1 = grid[steps.start]
    for i in steps:
        t0, t1 = t1, grid[i + 1]
        if scaled is None:
            y_next, _ = rk_step(func, tableau, t0, y, t1 - t0)
        else:
            y_next, _ = rk_step_fast(func, tableau, t0, y, scaled[i - steps.start].unbind())
        for j in per_step[i]:
            if times[j] == ends[i + 1]:
                outputs.append(y_next)
            else:  # linear interpolation inside the step, as torchdiffeq does by default
                outputs.append(y + (t[j] - t0) / (t1 - t0) * (y_next - y))
        if i + 1 - checked_from >= CHECK_EVERY or i + 1 == steps.stop:
            _check_finite(y_next, tableau, ends, checked_from, i + 1)
            checked_from = i + 1
        y = y_next
    if stats is not None:
        stats.record_steps(ends[steps.start:steps.stop], [ends[i + 1] - ends[i] for i in steps])
    return y, outputs


def _check_finite(y: Tensor, tableau: ButcherTableau, ends: list[float], first: int, stop: int) -> None:
    """Raise if the state after step ``stop - 1`` is not finite (it was finite before step ``first``)."""
    if bool(torch.isfinite(y).all()):
        return
    n = stop - first
    where = (f"at t={ends[stop]:g}, in {tableau.name} step {stop}" if n == 1 else
             f"between t={ends[first]:g} and t={ends[stop]:g}, in {tableau.name} steps {first + 1} to {stop}")
    size = max(abs(ends[k + 1] - ends[k]) for k in range(first, stop))
    raise FloatingPointError(
        f"the solution became NaN or infinite {where} (step size {size:g}). Explicit methods are unstable when "
        "the step is too large for the problem (stiffness): try a smaller step_size, or method='dopri5'."
    )


def integrate_fixed(
    func: Func,
    tableau: ButcherTableau,
    y0: Tensor,
    t: Tensor,
    step_size: Optional[float],
    stats: SolveStats,
    max_steps: Optional[int] = None,
) -> Tensor:
    grid = step_grid(t, step_size, max_steps)  # a single time is a grid of no steps: the output is y0 alone
    _, outputs = run_steps(func, tableau, y0, t, grid, range(len(grid) - 1), outputs_per_step(t, grid), stats)
    return torch.stack([y0, *outputs])
