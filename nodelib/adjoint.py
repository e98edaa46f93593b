"""Gradients through an ODE solve (chapter 2): the continuous adjoint, and checkpointed backpropagation.

Three ways to differentiate ``L(odeint(f, z0, t))`` with respect to ``z0``, the parameters θ of ``f`` and
the times ``t``:

1. **Backpropagation through the solver** (``nodelib.odeint`` with autograd): the exact gradient of the
   discrete computation; memory grows with the number of steps, because every stage's activations are kept.
2. **The adjoint method** (:func:`odeint_adjoint`): after a forward solve that keeps nothing, solve the
   augmented system backwards from ``t[-1]`` to ``t[0]``::

       dz/dt = f(t, z)                 (reconstructs the trajectory backwards)
       da/dt = -a^T ∂f/∂z              (the adjoint a(t) = ∂L/∂z(t))
       dg/dt = -a^T ∂f/∂θ,  g(t[-1]) = 0  (accumulates dL/dθ = g(t[0]))

   adding ``∂L/∂z(t_i)`` to ``a`` at each observation time. Memory does not grow with the number of
   steps. The result approximates the gradient of the *exact* ODE solution, and is only as good as the
   backward solve: if reconstructing ``z`` backwards is unstable, it can be far from the gradient of the
   computation that was actually run.
3. **Checkpointing** (:func:`odeint_checkpointed`, "discretize-then-optimize" as in ANODE): keep the state
   every ``checkpoint_every`` steps, and in the backward pass recompute each segment with autograd. The
   gradient is exactly that of the discrete forward solve, for memory that grows with the number of
   checkpoints rather than of stages, at the price of a second forward pass.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ._impl import checks
from ._impl.fixed_grid import outputs_per_step, run_steps, step_grid
from ._impl.stats import SolveStats
from .solvers import FIXED_STEP_METHODS, odeint

__all__ = ["odeint_adjoint", "odeint_checkpointed", "AdjointStats"]


class AdjointStats:
    """Function evaluations of the last call: ``forward_nfe`` in the forward solve, ``backward_nfe`` in the
    reverse (augmented) solve, each evaluation of which also computes one vector-Jacobian product."""

    def __init__(self) -> None:
        self.forward_nfe = 0
        self.backward_nfe = 0

    def __repr__(self) -> str:
        return f"AdjointStats(forward_nfe={self.forward_nfe}, backward_nfe={self.backward_nfe})"


def _find_params(func: Callable, adjoint_params: Optional[Sequence[Tensor]]) -> tuple[Tensor, ...]:
    if adjoint_params is not None:
        params = tuple(adjoint_params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"adjoint_params must be tensors, got {type(p).__name__}")
        return tuple(p for p in params if p.requires_grad)
    if isinstance(func, nn.Module):
        return tuple(p for p in func.parameters() if p.requires_grad)
    raise TypeError(
        "func is not an nn.Module, so its parameters cannot be found: pass adjoint_params=(tensor, ...) "
        "listing the tensors to differentiate (or adjoint_params=() for none)"
    )


class _AdjointSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, func, solve_kwargs, adjoint_kwargs, stats, y0, t, *params):  # type: ignore[override]
        with torch.no_grad():
            ys, forward_stats = odeint(func, y0, t, return_stats=True, **solve_kwargs)
        stats.forward_nfe = forward_stats.nfe
        ctx.func, ctx.adjoint_kwargs, ctx.stats = func, adjoint_kwargs, stats
        ctx.save_for_backward(t, ys, *params)
        return ys

    @staticmethod
    def backward(ctx, grad_ys: Tensor):  # type: ignore[override]
        t, ys, *params = ctx.saved_tensors
        func = ctx.func
        shape, n = ys.shape[1:], ys[0].numel()
        sizes = [p.numel() for p in params]
        backward_stats = SolveStats(method=ctx.adjoint_kwargs.get("method", "dopri5"))

        def augmented(s_t: Tensor, s: Tensor) -> Tensor:
            z, a = s[:n].view(shape), s[n : 2 * n].view(shape)
            with torch.enable_grad():
                z = z.detach().requires_grad_(True)
                f = func(s_t, z)
                vjps = torch.autograd.grad(f, (z, *params), grad_outputs=-a, allow_unused=True)
            pieces = [f.reshape(-1)]
            for v, like in zip(vjps, (z, *params)):
                pieces.append((torch.zeros_like(like) if v is None else v).reshape(-1))
            return torch.cat(pieces)

        z, a = ys[-1], grad_ys[-1]
        g = torch.zeros(sum(sizes), dtype=ys.dtype, device=ys.device)
        t_grads = torch.zeros_like(t) if ctx.needs_input_grad[5] else None
        with torch.no_grad():
            for i in range(len(t) - 1, 0, -1):
                if t_grads is not None:  # moving an observation time reads z where it then is
                    t_grads[i] = (grad_ys[i] * func(t[i], ys[i])).sum()
                state = torch.cat([z.reshape(-1), a.reshape(-1), g])
                state = odeint(augmented, state, t[i - 1 : i + 1].flip(0), return_stats=True, **ctx.adjoint_kwargs)
                state, s = state[0][-1], state[1]
                backward_stats.nfe += s.nfe
                z, a, g = state[:n].view(shape), state[n : 2 * n].view(shape), state[2 * n :]
                if i == 1 and t_grads is not None:
                    # Moving t0 with z0 fixed shifts the trajectory after t0: dL/dt0 = -a(t0+)·f(t0, z0), with the
                    # adjoint taken *before* the jump of the observation at t0 (that observation is z0 itself).
                    t_grads[0] = -(a * func(t[0], ys[0])).sum()
                a = a + grad_ys[i - 1]
        ctx.stats.backward_nfe = backward_stats.nfe
        param_grads = list(torch.split(g, sizes)) if sizes else []
        param_grads = [pg.view_as(p) for pg, p in zip(param_grads, params)]
        return (None, None, None, None, a, t_grads, *param_grads)


def odeint_adjoint(
    func: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Union[Tensor, Sequence[float]],
    *,
    method: str = "dopri5",
    rtol: float = 1e-7,
    atol: float = 1e-9,
    step_size: Optional[float] = None,
    options: Optional[Mapping[str, Any]] = None,
    adjoint_method: Optional[str] = None,
    adjoint_rtol: Optional[float] = None,
    adjoint_atol: Optional[float] = None,
    adjoint_step_size: Optional[float] = None,
    adjoint_params: Optional[Sequence[Tensor]] = None,
    stats: Optional[AdjointStats] = None,
) -> Tensor:
    """Like :func:`nodelib.odeint`, but differentiated by the adjoint method in constant memory.

    The forward solve keeps no graph. ``loss.backward()`` then solves the augmented system backwards with
    ``adjoint_method`` (default: ``method``), ``adjoint_rtol``/``adjoint_atol`` and ``adjoint_step_size``
    (defaults: the forward ones). Gradients reach ``y0``, ``t`` and the parameters: those of ``func`` if it is
    an ``nn.Module``, else the tensors in ``adjoint_params``. Pass an :class:`AdjointStats` as ``stats`` to
    read the function evaluations of both solves.

    Compared with ``torchdiffeq.odeint_adjoint``: the same idea and defaults; this one is written to be read,
    takes a single tensor state, and uses nodelib's teaching solvers in both directions.
    """
    y0 = checks.check_state(y0)
    t = checks.check_time_grid(t, y0)
    params = _find_params(func, adjoint_params)
    for p in params:
        if p.dtype != y0.dtype or p.device != y0.device:
            raise TypeError(
                f"parameter of dtype {p.dtype} on {p.device} does not match y0 ({y0.dtype} on {y0.device}); "
                "convert the module with .to(y0) so the augmented state has one dtype"
            )
    solve_kwargs = dict(method=method, rtol=rtol, atol=atol, step_size=step_size, options=options)
    adjoint_kwargs = dict(
        method=adjoint_method or method,
        rtol=rtol if adjoint_rtol is None else adjoint_rtol,
        atol=atol if adjoint_atol is None else adjoint_atol,
        step_size=step_size if adjoint_step_size is None else adjoint_step_size,
    )
    if adjoint_kwargs["method"] not in FIXED_STEP_METHODS:
        adjoint_kwargs["step_size"] = None
    return _AdjointSolve.apply(func, solve_kwargs, adjoint_kwargs, stats or AdjointStats(), y0, t, *params)


def odeint_checkpointed(
    func: Callable[[Tensor, Tensor], Tensor],
    y0: Tensor,
    t: Union[Tensor, Sequence[float]],
    *,
    method: str = "rk4",
    step_size: Optional[float] = None,
    checkpoint_every: int = 1,
    return_stats: bool = False,
) -> Union[Tensor, tuple[Tensor, SolveStats]]:
    """A fixed-step solve whose backward pass recomputes segments of ``checkpoint_every`` steps.

    Returns exactly what ``nodelib.odeint(func, y0, t, method=method, step_size=step_size)`` returns, and
    its gradients are those of backpropagation through that same discrete solve; only the state at the
    start of each segment is kept between the forward and the backward pass. The NFE in the stats counts
    the recomputation done during ``backward()`` too, once that has run.
    """
    y0 = checks.check_state(y0)
    t = checks.check_time_grid(t, y0)
    if method not in FIXED_STEP_METHODS:
        raise ValueError(
            f"checkpointing needs a fixed-step method ({sorted(FIXED_STEP_METHODS)}), got {method!r}: an adaptive "
            "solve chooses its steps from the data, so its discrete computation is not fixed in advance"
        )
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    step_size = checks.check_positive("step_size", step_size, allow_none=True)
    stats = SolveStats(method=method)
    counted = stats.counting(checks.checked_func(func, y0))
    tableau = FIXED_STEP_METHODS[method]
    grid = step_grid(t, step_size)
    per_step = outputs_per_step(t, grid)
    n_steps = len(grid) - 1

    outputs: list[Tensor] = [y0]
    y = y0
    for start in range(0, n_steps, checkpoint_every):
        steps = range(start, min(start + checkpoint_every, n_steps))

        def segment(y_in: Tensor, steps: range = steps) -> tuple[Tensor, ...]:
            y_out, outs = run_steps(counted, tableau, y_in, t, grid, steps, per_step, None)
            return (y_out, *outs)

        if torch.is_grad_enabled():
            result = checkpoint(segment, y, use_reentrant=False)
        else:
            result = segment(y)
        y = result[0]
        outputs.extend(result[1:])
    for i in range(n_steps):
        stats.record_step(float(grid[i].detach()), float((grid[i + 1] - grid[i]).detach()))
    ys = torch.stack(outputs)
    return (ys, stats) if return_stats else ys
