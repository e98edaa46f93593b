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

   adding ``∂L/∂z(t_i)`` to ``a`` at each observation time, where ``z`` is also put back on the stored forward
   solution (a *restart*, as torchdiffeq does: the outputs are kept anyway, so it costs no memory). Memory does
   not grow with the number of steps. The result approximates the gradient of the *exact* ODE solution, and is
   only as good as the backward solve: if reconstructing ``z`` backwards between two observations is unstable,
   it can be far from the gradient of the computation that was actually run.

   How the backward solve measures its error matters once θ is large. ``adjoint_norm="mixed"`` (the default,
   as in torchdiffeq) takes the largest of the RMS norms of ``z``, ``a`` and each parameter's gradient, each on
   its own; ``"seminorm"`` leaves the parameter gradients out of the error control altogether (Kidger, Chen &
   Lyons 2021: they are integrals that feed nothing back into the system, so their error does not grow), which
   saves backward steps; ``"rms"`` is one RMS over the whole augmented vector, in which thousands of parameter
   entries drown the few entries of ``z`` and ``a``, so these are solved far less accurately than asked.
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
from ._impl.methods import ADJOINT_NORMS, FIXED_STEP_METHODS, check_method
from ._impl.stats import SolveStats
from ._impl.structure import State, Structure, max_rms_norm
from .nfe import EvalCounter
from .solvers import Tolerance, merge_options, solve_flat

__all__ = ["odeint_adjoint", "odeint_checkpointed", "AdjointStats", "ADJOINT_NORMS"]


class AdjointStats(EvalCounter):
    """Function evaluations of the last call: ``forward_nfe`` in the forward solve, ``backward_nfe`` in the
    reverse (augmented) solve, each evaluation of which also computes one vector-Jacobian product."""

    def set_counts(self, forward: int, backward: Optional[int] = None) -> None:
        self.counts["forward"] = forward
        if backward is not None:
            self.counts["backward"] = backward


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
    def forward(ctx, func, forward_kwargs, backward_kwargs, restart, stats, y0, t, *params):  # type: ignore[override]
        forward_stats = SolveStats(method=forward_kwargs["method"])
        with torch.no_grad():
            ys = solve_flat(func, y0, t, stats=forward_stats, **forward_kwargs)
        stats.set_counts(forward_stats.nfe, 0)
        ctx.func, ctx.backward_kwargs, ctx.restart, ctx.stats = func, backward_kwargs, restart, stats
        ctx.save_for_backward(t, ys, *params)
        return ys

    @staticmethod
    def backward(ctx, grad_ys: Tensor):  # type: ignore[override]
        t, ys, *params = ctx.saved_tensors
        func = ctx.func
        shape, n = ys.shape[1:], ys[0].numel()
        sizes = [p.numel() for p in params]
        backward_stats = SolveStats(method=ctx.backward_kwargs["method"])

        def augmented(s_t: Tensor, s: Tensor) -> Tensor:
            z, a = s[:n].view(shape), s[n : 2 * n].view(shape)
            vjps: Sequence[Optional[Tensor]]
            with torch.enable_grad():
                z = z.detach().requires_grad_(True)
                f = func(s_t, z)
                if f.requires_grad:
                    vjps = torch.autograd.grad(f, (z, *params), grad_outputs=-a, allow_unused=True)
                else:  # f reads neither z nor θ (say dz/dt = g(t)): every vector-Jacobian product is zero
                    vjps = (None,) * (1 + len(params))
            pieces = [f.reshape(-1)]
            for v, like in zip(vjps, (z, *params)):
                pieces.append((torch.zeros_like(like) if v is None else v).reshape(-1))
            return torch.cat(pieces)

        z, a = ys[-1], grad_ys[-1]
        g = torch.zeros(sum(sizes), dtype=ys.dtype, device=ys.device)
        t_grads = torch.zeros_like(t) if ctx.needs_input_grad[6] else None
        with torch.no_grad():
            for i in range(len(t) - 1, 0, -1):
                if ctx.restart:  # put z back on the stored forward solution at every output time
                    z = ys[i]
                if t_grads is not None:  # moving an observation time reads z where it then is
                    t_grads[i] = (grad_ys[i] * func(t[i], ys[i])).sum()
                state = torch.cat([z.reshape(-1), a.reshape(-1), g])
                state = solve_flat(augmented, state, t[i - 1 : i + 1].flip(0), stats=backward_stats,
                                   **ctx.backward_kwargs)[-1]
                z, a, g = state[:n].view(shape), state[n : 2 * n].view(shape), state[2 * n :]
                if i == 1 and t_grads is not None:
                    # Moving t0 with z0 fixed shifts the trajectory after t0: dL/dt0 = -a(t0+)·f(t0, z0), with the
                    # adjoint taken *before* the jump of the observation at t0 (that observation is z0 itself).
                    t_grads[0] = -(a * func(t[0], ys[0])).sum()
                a = a + grad_ys[i - 1]
        ctx.stats.set_counts(ctx.stats.forward_nfe, backward_stats.nfe)
        param_grads = list(torch.split(g, sizes)) if sizes else []
        param_grads = [pg.view_as(p) for pg, p in zip(param_grads, params)]
        return (None, None, None, None, None, a, t_grads, *param_grads)


def odeint_adjoint(
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
    adjoint_method: Optional[str] = None,
    adjoint_rtol: Optional[Tolerance] = None,
    adjoint_atol: Optional[Tolerance] = None,
    adjoint_step_size: Optional[float] = None,
    adjoint_options: Optional[Mapping[str, Any]] = None,
    adjoint_params: Optional[Sequence[Tensor]] = None,
    adjoint_norm: Optional[str] = None,
    restart: bool = True,
    stats: Optional[AdjointStats] = None,
) -> State:
    """Like :func:`nodelib.odeint`, but differentiated by the adjoint method in constant memory.

    The forward solve keeps no graph, only the outputs. ``loss.backward()`` then solves the augmented system
    backwards interval by interval; at each output time the adjoint jumps by ``∂L/∂y(t_i)`` and, with
    ``restart=True`` (the default, as in torchdiffeq), the state is put back on the stored forward solution
    ``y(t_i)``, so an error of the backward reconstruction never travels past an observation.
    ``restart=False`` carries the reconstruction across all intervals (chapter 2 shows what that costs).

    The backward solve takes every setting of the forward one unless told otherwise: ``adjoint_method``,
    ``adjoint_rtol``/``adjoint_atol``, and the step size, step budget and first step from ``adjoint_step_size``
    or ``adjoint_options`` (torchdiffeq's name; default: ``options``). Gradients reach ``y0``, ``t`` and the
    parameters: those of ``func`` if it is an ``nn.Module``, else the tensors in ``adjoint_params``. ``y0``
    may be a tuple of tensors, as in :func:`nodelib.odeint`. Pass an :class:`AdjointStats` as ``stats`` to
    read the function evaluations of both solves.

    ``adjoint_norm`` chooses how an adaptive backward solve measures its error (:data:`ADJOINT_NORMS`):
    ``"mixed"`` (default: the largest RMS of the state, the adjoint and each parameter's gradient, each part of
    a tuple state on its own), ``"seminorm"`` (the same without the parameter gradients: fewer backward steps)
    or ``"rms"`` (one RMS over everything: nodelib's earlier behaviour, inaccurate when θ is large).
    torchdiffeq's spelling ``adjoint_options={"norm": "seminorm"}`` works too. Fixed-step methods ignore it.

    Compared with ``torchdiffeq.odeint_adjoint``: the same idea and defaults (its default norm is the mixed
    one); this one is written to be read and uses nodelib's teaching solvers in both directions.
    """
    structure = Structure(y0)
    flat0 = structure.flatten(y0)
    t = checks.check_time_grid(t, flat0)
    if not isinstance(restart, bool):
        raise TypeError(f"restart must be True or False, got {restart!r}")
    params = _find_params(func, adjoint_params)
    for p in params:
        if p.dtype != flat0.dtype or p.device != flat0.device:
            raise TypeError(
                f"parameter of dtype {p.dtype} on {p.device} does not match y0 ({flat0.dtype} on {flat0.device}); "
                "convert the module with .to(y0) so the augmented state has one dtype"
            )
    method = check_method(method)
    step_size, max_steps, first_step = merge_options(step_size, max_steps, options)
    forward_kwargs = dict(method=method, rtol=structure.tolerance("rtol", rtol), atol=structure.tolerance("atol", atol),
                          step_size=step_size, max_steps=max_steps, first_step=first_step, norm=structure.norm())
    backward_method = check_method(adjoint_method or method)
    if adjoint_options is None:
        adjoint_options = dict(options or {})
        adjoint_options.pop("step_size", None)  # the step size travels as `step_size` below
    else:
        adjoint_options = dict(adjoint_options)
    adjoint_norm = _resolve_norm(adjoint_norm, adjoint_options.pop("norm", None))
    b_step, b_max_steps, b_first = merge_options(adjoint_step_size, max_steps, adjoint_options)
    if b_step is None:
        b_step = step_size
    if backward_method not in FIXED_STEP_METHODS:
        b_step = None
    else:
        b_first = None
    # The augmented state [z, a, g] is one vector: a tolerance per part of y0 cannot follow it, so a tuple of
    # tolerances applies its smallest value backwards.
    backward_kwargs = dict(
        method=backward_method,
        rtol=_scalar_tolerance(rtol if adjoint_rtol is None else adjoint_rtol),
        atol=_scalar_tolerance(atol if adjoint_atol is None else adjoint_atol),
        step_size=b_step, max_steps=b_max_steps, first_step=b_first,
        norm=augmented_norm(adjoint_norm, structure.sizes, [p.numel() for p in params]),
    )
    stats = stats if stats is not None else AdjointStats()
    ys = _AdjointSolve.apply(structure.wrap(func), forward_kwargs, backward_kwargs, restart, stats, flat0, t, *params)
    return structure.unflatten(ys)


def _resolve_norm(adjoint_norm: Optional[str], from_options: Any) -> str:
    """The backward norm's name, from ``adjoint_norm`` or torchdiffeq's ``adjoint_options["norm"]``."""
    if adjoint_norm is not None and from_options is not None and adjoint_norm != from_options:
        raise ValueError(f"adjoint_norm={adjoint_norm!r} and adjoint_options['norm']={from_options!r} disagree; "
                         "give the norm once")
    name = adjoint_norm if adjoint_norm is not None else from_options if from_options is not None else "mixed"
    if name not in ADJOINT_NORMS:
        raise ValueError(f"the adjoint's norm must be one of {ADJOINT_NORMS}, got {name!r}")
    return name


def augmented_norm(kind: str, state_sizes: Sequence[int], param_sizes: Sequence[int]
                   ) -> Optional[Callable[[Tensor], Tensor]]:
    """The error norm of the backward solve on the flat augmented vector ``[z, a, dL/dθ]``.

    ``state_sizes`` are the sizes of the state's parts (one for a tensor state); ``z`` and ``a`` are laid out
    like the state. ``"mixed"`` measures every part of ``z`` and ``a`` and every parameter's gradient on its
    own and takes the largest; ``"seminorm"`` the same, ignoring the gradients; ``"rms"``: None, the solvers'
    plain RMS over the whole vector.
    """
    if kind == "rms":
        return None
    parts = [*state_sizes, *state_sizes]
    if kind == "seminorm":
        return max_rms_norm([*parts, sum(param_sizes)], measured=len(parts))
    return max_rms_norm([*parts, *param_sizes])


def _scalar_tolerance(value: Tolerance) -> float:
    if isinstance(value, (tuple, list)):
        return min(checks.check_positive("tolerance", v) for v in value)
    return checks.check_positive("tolerance", value)


def odeint_checkpointed(
    func: Callable[[Tensor, Any], Any],
    y0: State,
    t: Union[Tensor, Sequence[float]],
    *,
    method: str = "rk4",
    step_size: Optional[float] = None,
    checkpoint_every: int = 1,
    max_steps: int = 100_000,
    return_stats: bool = False,
) -> Union[State, tuple[State, SolveStats]]:
    """A fixed-step solve whose backward pass recomputes segments of ``checkpoint_every`` steps.

    Returns exactly what ``nodelib.odeint(func, y0, t, method=method, step_size=step_size)`` returns, and
    its gradients are those of backpropagation through that same discrete solve; only the state at the
    start of each segment is kept between the forward and the backward pass. The NFE in the stats counts
    the recomputation done during ``backward()`` too, once that has run. ``y0`` may be a tuple of tensors.
    """
    structure = Structure(y0)
    flat0 = structure.flatten(y0)
    t = checks.check_time_grid(t, flat0)
    if method not in FIXED_STEP_METHODS:
        raise ValueError(
            f"checkpointing needs a fixed-step method ({sorted(FIXED_STEP_METHODS)}), got {method!r}: an adaptive "
            "solve chooses its steps from the data, so its discrete computation is not fixed in advance"
        )
    checks.check_positive_int("checkpoint_every", checkpoint_every)
    step_size = checks.check_positive("step_size", step_size, allow_none=True)
    stats = SolveStats(method=method)
    counted = stats.counter.wrap(checks.checked_func(structure.wrap(func), flat0))
    tableau = FIXED_STEP_METHODS[method]
    grid = step_grid(t, step_size, checks.check_max_steps(max_steps))
    per_step = outputs_per_step(t, grid)
    n_steps = len(grid) - 1

    outputs: list[Tensor] = [flat0]
    y = flat0
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
    ys = structure.unflatten(torch.stack(outputs))
    return (ys, stats) if return_stats else ys
