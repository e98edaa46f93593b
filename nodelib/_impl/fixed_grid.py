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
from .rk import ButcherTableau, rk_step
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
    if step_size is None:
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
    """Take the steps ``steps`` of the grid from state ``y``; return the last state and the outputs met on the way."""
    outputs: list[Tensor] = []
    for i in steps:
        t0, t1 = grid[i], grid[i + 1]
        h = t1 - t0
        y_next, _ = rk_step(func, tableau, t0, y, h)
        if stats is not None:
            stats.record_step(float(t0.detach()), float(h.detach()))
        if not torch.isfinite(y_next).all():
            raise FloatingPointError(
                f"the solution became NaN or infinite at t={float(t1):g}, after {i + 1} {tableau.name} step(s) "
                f"of size {abs(float(h)):g}. Explicit methods are unstable when the step is too large for "
                "the problem (stiffness): try a smaller step_size, or method='dopri5'."
            )
        for j in per_step[i]:
            if t[j] == t1:
                outputs.append(y_next)
            else:  # linear interpolation inside the step, as torchdiffeq does by default
                outputs.append(y + (t[j] - t0) / h * (y_next - y))
        y = y_next
    return y, outputs


def integrate_fixed(
    func: Func,
    tableau: ButcherTableau,
    y0: Tensor,
    t: Tensor,
    step_size: Optional[float],
    stats: SolveStats,
    max_steps: Optional[int] = None,
) -> Tensor:
    grid = step_grid(t, step_size, max_steps)
    _, outputs = run_steps(func, tableau, y0, t, grid, range(len(grid) - 1), outputs_per_step(t, grid), stats)
    return torch.stack([y0, *outputs])
