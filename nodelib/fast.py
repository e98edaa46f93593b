"""A fast path for training ODE blocks on a GPU: the same mathematics as the eager path, in fewer launches.

A fixed-step solve of an ODE block is a fixed sequence of evaluations of the field: with Euler's method and
step 0.05 on ``[0, 1]`` it is 20 calls, with torchdiffeq's ``rk4`` (the 3/8 rule) and step 0.25 it is 16. At
the sizes of chapter 5 one call costs far less than the Python and kernel-launch overhead around it, so
:class:`UnrolledSolve` writes the whole solve as straight-line code that ``torch.compile`` turns into one
graph (fused kernels; with ``mode="reduce-overhead"`` a CUDA graph, launched once per iteration). It computes
what ``torchdiffeq.odeint`` computes on the same grid, values and gradients (backpropagation through the
steps), to float rounding; the tests check this on the CPU.

Where the unrolled solve does not apply, :func:`fast_ode_block` says why and falls back:

- adaptive solvers (``dopri5``) choose their steps from the data, so there is no fixed graph: only the field
  is compiled, and torchdiffeq drives it;
- the adjoint method (``adjoint=True``) gives gradients of a different approximation than backpropagation
  through the steps, so the same mathematics means torchdiffeq's adjoint, with a compiled field;
- nodelib's teaching solvers (``backend="nodelib"``) are left as they are.

Status: the equality of values and gradients is tested on the CPU; the speed-ups it is for were not measured,
because no GPU was available where it was written (see ``python -m nodelib.experiments.gpu_speed --help``).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from .blocks import ODEBlock
from .nfe import NFECounter

UNROLLED_METHODS = ("euler", "rk4")


def fixed_grid(t0: float, t1: float, step_size: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """The time grid torchdiffeq's fixed-step solvers use for ``step_size`` on ``[t0, t1]`` (last point = t1)."""
    if not (isinstance(step_size, (int, float)) and math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive number, got {step_size!r}")
    if not t1 > t0:
        raise ValueError(f"expected t1 > t0, got t0={t0}, t1={t1}")
    ends = torch.tensor([t0, t1], dtype=dtype)
    n_points = int(torch.ceil((ends[1] - ends[0]) / step_size + 1).item())
    grid = torch.arange(0, n_points, dtype=dtype) * step_size + ends[0]
    grid[-1] = ends[1]
    return grid


class UnrolledSolve(nn.Module):
    """``z(t1)`` by Euler or torchdiffeq's ``rk4`` (3/8 rule) on a fixed grid, written out step by step.

    Args:
        field: the vector field ``field(t, z)``.
        t0, t1, step_size: the interval and the step (torchdiffeq's grid construction, see :func:`fixed_grid`).
        method: ``"euler"`` or ``"rk4"``.
    """

    def __init__(self, field: nn.Module, t0: float, t1: float, step_size: float, method: str = "rk4") -> None:
        super().__init__()
        if method not in UNROLLED_METHODS:
            raise ValueError(f"method must be one of {UNROLLED_METHODS} for an unrolled solve, got {method!r}")
        self.field, self.method = field, method
        self.register_buffer("grid", fixed_grid(t0, t1, step_size), persistent=False)
        self.n_steps = len(self.grid) - 1

    def forward(self, z: Tensor) -> Tensor:
        grid = self.grid.to(dtype=z.dtype)
        for k in range(self.n_steps):
            t0, t1 = grid[k], grid[k + 1]
            dt = t1 - t0
            k1 = self.field(t0, z)
            if self.method == "euler":
                z = z + dt * k1
                continue
            k2 = self.field(t0 + dt / 3, z + dt * k1 / 3)
            k3 = self.field(t0 + dt * 2 / 3, z + dt * (k2 - k1 / 3))
            k4 = self.field(t1, z + dt * (k1 - k2 + k3))
            z = z + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125
        return z


def _compiler(compile: bool, mode: Optional[str], backend: Optional[str]) -> Callable[[nn.Module], nn.Module]:
    if not compile:
        return lambda module: module
    kwargs: dict[str, Any] = {}
    if mode is not None:
        kwargs["mode"] = mode
    if backend is not None:
        kwargs["backend"] = backend
    return lambda module: torch.compile(module, **kwargs)


def fast_ode_block(block: ODEBlock, *, compile: bool = True, mode: Optional[str] = None,
                   backend: Optional[str] = None) -> tuple[nn.Module, str]:
    """A module that computes what ``block`` computes, faster where it can; and a sentence saying what was done.

    Args:
        block: an :class:`~nodelib.blocks.ODEBlock`.
        compile: apply ``torch.compile`` (off: the unrolled solve alone, e.g. to test it).
        mode, backend: passed to ``torch.compile`` (``mode="reduce-overhead"`` captures CUDA graphs).

    Returns ``(module, how)``. The module takes ``z0`` and returns ``z(t1)`` like ``block``; ``how`` names the
    path taken, or why the unrolled solve did not apply.
    """
    if not isinstance(block, ODEBlock):
        raise TypeError(f"expected an ODEBlock, got {type(block).__name__}")
    compiled = _compiler(compile, mode, backend)
    if block.backend != "torchdiffeq":
        return block, "unchanged: nodelib's teaching solvers are for reading, not for speed"
    step_size = block.options.get("step_size")
    reasons = []
    if block.method not in UNROLLED_METHODS:
        reasons.append(f"method {block.method!r} is adaptive or not unrolled (unrolled: {', '.join(UNROLLED_METHODS)})")
    if step_size is None:
        reasons.append("no options={'step_size': ...} fixes the grid")
    if block.adjoint:
        reasons.append("adjoint=True asks for adjoint gradients, which an unrolled solve does not compute")
    # Counting evaluations is Python bookkeeping; kept outside the compiled code, which would otherwise
    # specialise on the count and recompile at every call.
    counter = block.field if isinstance(block.field, NFECounter) else None
    inner = counter.field if counter is not None else block.field
    if reasons:
        if compile and block.adjoint:
            # torchdiffeq's adjoint differentiates the field with retain_graph=True, which compiled backward
            # functions with donated buffers refuse; this switch (process-wide) turns that optimisation off.
            import torch._functorch.config as functorch_config

            functorch_config.donated_buffer = False
        if counter is not None:
            counter.field = compiled(inner)
        else:
            block.field = compiled(inner)
        return block, "field compiled, torchdiffeq drives it: " + "; ".join(reasons)
    solve = UnrolledSolve(inner, block.t0, block.t1, float(step_size), block.method)
    stages = 1 if block.method == "euler" else 4
    module = _Counted(compiled(solve), counter, solve.n_steps * stages)
    return module, f"unrolled {block.method} solve, {solve.n_steps} steps" + (", compiled" if compile else "")


class _Counted(nn.Module):
    """Runs the (compiled) solve and adds its known number of evaluations to the NFE counter."""

    def __init__(self, solve: nn.Module, counter: Optional[NFECounter], evaluations: int) -> None:
        super().__init__()
        self.solve = solve
        self._counter = [counter]  # a list: the counter is the model's, not a submodule of this one
        self.evaluations = evaluations

    def forward(self, z: Tensor) -> Tensor:
        counter = self._counter[0]
        if counter is not None:
            counter.counts[counter._phase] = counter.counts.get(counter._phase, 0) + self.evaluations
        return self.solve(z)
