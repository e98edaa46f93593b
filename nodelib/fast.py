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
  is compiled, and torchdiffeq drives it (likewise for ``gradient="checkpointed"``);
- the adjoint method (``gradient="adjoint"``) gives gradients of a different approximation than
  backpropagation through the steps, so the same mathematics means torchdiffeq's adjoint. Its backward solve
  differentiates the field with ``retain_graph=True``, which a compiled field refuses (PyTorch's donated
  buffers) unless a process-wide switch is turned off, and turning it off around our own calls is not enough
  once the same code has been compiled elsewhere: the block is left as it is;
- nodelib's teaching solvers (``backend="nodelib"``) are left as they are.

Status: the equality of values and gradients is tested on the CPU; the speed-ups it is for were not measured,
because no GPU was available where it was written (see ``python -m nodelib.experiments.gpu_speed --help``).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from ._impl.checks import check_positive
from ._impl.fixed_grid import step_grid
from .blocks import ODEBlock
from .nfe import NFECounter

UNROLLED_METHODS = ("euler", "rk4")


def fixed_grid(t0: float, t1: float, step_size: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """The fixed-step grid on ``[t0, t1]``: nodelib's one grid builder (:func:`nodelib._impl.fixed_grid.step_grid`)."""
    check_positive("step_size", step_size)
    if not t1 > t0:
        raise ValueError(f"expected t1 > t0, got t0={t0}, t1={t1}")
    return step_grid(torch.tensor([t0, t1], dtype=dtype), float(step_size))


class UnrolledSolve(nn.Module):
    """``z(t1)`` by Euler or torchdiffeq's ``rk4`` (3/8 rule) on a fixed grid, written out step by step.

    Args:
        field: the vector field ``field(t, z)``.
        t0, t1, step_size: the interval and the step (see :func:`fixed_grid`).
        method: ``"euler"`` or ``"rk4"``.
    """

    def __init__(self, field: nn.Module, t0: float, t1: float, step_size: float, method: str = "rk4") -> None:
        super().__init__()
        if method not in UNROLLED_METHODS:
            raise ValueError(f"method must be one of {UNROLLED_METHODS} for an unrolled solve, got {method!r}")
        self.field, self.method = field, method
        self.grid: Tensor
        self.register_buffer("grid", fixed_grid(t0, t1, step_size), persistent=False)
        self.n_steps = len(self.grid) - 1

    @property
    def evaluations(self) -> int:
        return self.n_steps * STAGES[self.method]

    def forward(self, z: Tensor) -> Tensor:
        return unrolled_solve(self.field, z, self.grid, self.method)


STAGES = {"euler": 1, "rk4": 4}


def unrolled_solve(field: Callable[[Tensor, Tensor], Tensor], z: Tensor, grid: Tensor, method: str) -> Tensor:
    """The steps of Euler or the 3/8 rule over ``grid``, written out (what :class:`UnrolledSolve` runs)."""
    grid = grid.to(dtype=z.dtype)
    for k in range(len(grid) - 1):
        t0, t1 = grid[k], grid[k + 1]
        dt = t1 - t0
        k1 = field(t0, z)
        if method == "euler":
            z = z + dt * k1
            continue
        k2 = field(t0 + dt / 3, z + dt * k1 / 3)
        k3 = field(t0 + dt * 2 / 3, z + dt * (k2 - k1 / 3))
        k4 = field(t1, z + dt * (k1 - k2 + k3))
        z = z + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125
    return z


def _compiler(compile: bool, mode: Optional[str], backend: Optional[str]) -> Callable[[Callable], Callable]:
    if not compile:
        return lambda fn: fn
    kwargs: dict[str, Any] = {}
    if mode is not None:
        kwargs["mode"] = mode
    if backend is not None:
        kwargs["backend"] = backend
    return lambda fn: torch.compile(fn, **kwargs)


def fast_ode_block(block: ODEBlock, *, compile: bool = True, mode: Optional[str] = None,
                   backend: Optional[str] = None) -> tuple[nn.Module, str]:
    """A module that computes what ``block`` computes, faster where it can; and a sentence saying what was done.

    Args:
        block: an :class:`~nodelib.blocks.ODEBlock`.
        compile: apply ``torch.compile`` (off: the unrolled solve alone, e.g. to test it).
        mode, backend: passed to ``torch.compile`` (``mode="reduce-overhead"`` captures CUDA graphs).

    Returns ``(module, how)``. The module takes ``z0`` and returns ``z(t1)`` like ``block``; ``how`` names the
    path taken, or why the unrolled solve did not apply. ``block`` is left as it was, and the module shares
    its parameters under the same names: ``module.state_dict()`` has ``block.state_dict()``'s keys, so a
    checkpoint of a model trained on the fast path loads into the eager model and back. No process-wide
    setting is changed.
    """
    if not isinstance(block, ODEBlock):
        raise TypeError(f"expected an ODEBlock, got {type(block).__name__}")
    compiled = _compiler(compile, mode, backend)
    if block.backend != "torchdiffeq":
        return block, "unchanged: nodelib's teaching solvers are for reading, not for speed"
    cfg = block.solver
    if cfg.gradient == "adjoint":
        return block, ("unchanged: torchdiffeq's adjoint differentiates the field with retain_graph=True, which a "
                       "compiled field refuses without a process-wide switch")
    reasons = []
    if cfg.method not in UNROLLED_METHODS:
        reasons.append(f"method {cfg.method!r} is adaptive or not unrolled (unrolled: {', '.join(UNROLLED_METHODS)})")
    if cfg.step_size is None:
        reasons.append("no step_size fixes the grid")
    if cfg.gradient == "checkpointed":
        reasons.append("gradient='checkpointed' recomputes the solve in the backward pass")
    if reasons:
        return _CompiledFieldBlock(block, compiled), "field compiled, torchdiffeq drives it: " + "; ".join(reasons)
    assert cfg.step_size is not None
    return _UnrolledBlock(block, compiled), (f"unrolled {cfg.method} solve, {len(fixed_grid(block.t0, block.t1, cfg.step_size)) - 1} "
                                             "steps" + (", compiled" if compile else ""))


def _inner_field(block: ODEBlock) -> tuple[nn.Module, Optional[NFECounter]]:
    counter = block.field if isinstance(block.field, NFECounter) else None
    inner = counter.field if counter is not None else block.field
    if not isinstance(inner, nn.Module):
        raise TypeError(f"the fast path compiles an nn.Module field, got {type(inner).__name__}")
    return inner, counter


class _UnrolledBlock(nn.Module):
    """The unrolled (compiled) solve of a fixed-step block. Registers only ``field``: the block's own keys."""

    def __init__(self, block: ODEBlock, compiled: Callable[[Callable], Callable]) -> None:
        super().__init__()
        self.field = block.field  # the same module (and so the same keys) as the block's
        inner, counter = _inner_field(block)
        self._inner = [inner]  # a list: registered once, as part of ``field``
        self.method = block.solver.method
        assert block.solver.step_size is not None
        self.grid: Tensor
        self.register_buffer("grid", fixed_grid(block.t0, block.t1, block.solver.step_size), persistent=False)
        self.evaluations = (len(self.grid) - 1) * STAGES[self.method]
        self._run = [compiled(self._solve)]  # a list: the compiled callable is not a submodule
        self._counters = [counter, block.counter]

    def _solve(self, z: Tensor) -> Tensor:
        return unrolled_solve(self._inner[0], z, self.grid, self.method)

    def forward(self, z: Tensor) -> Tensor:
        # Counting is Python bookkeeping, kept outside the compiled code (which would specialise on the count
        # and recompile at every call).
        for counter in self._counters:
            if counter is not None:
                counter.add(self.evaluations)
        return self._run[0](z)


class _CompiledFieldBlock(nn.Module):
    """The block's own solve, with a compiled field. Registers only ``field``: the block's own keys."""

    def __init__(self, block: ODEBlock, compiled: Callable[[Callable], Callable]) -> None:
        super().__init__()
        self.field = block.field
        inner, counter = _inner_field(block)
        self._call = [compiled(inner.forward)]
        self._counter = [counter]
        # the block's own solve around the compiled field; kept in a list, so its keys are not registered twice
        twin = ODEBlock(_ParamsField(self._field, block._module()), block.t0, block.t1, solver=block.solver)
        twin.counter = block.counter
        self._twin = [twin]

    def _field(self, t: Tensor, z: Any) -> Any:
        counter = self._counter[0]
        if counter is not None:
            counter.add(1)
        return self._call[0](t, z)

    def forward(self, z: Tensor) -> Tensor:
        return self._twin[0](z)


class _ParamsField(nn.Module):
    """A field that calls ``fn`` and owns ``params_from``'s parameters (so the twin block's module has them)."""

    def __init__(self, fn: Callable[..., Any], params_from: nn.Module) -> None:
        super().__init__()
        self._fn = [fn]
        self.params_from = params_from

    def forward(self, t: Tensor, z: Any) -> Any:
        return self._fn[0](t, z)
