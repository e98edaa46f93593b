"""Adaptive Dormand–Prince 5(4) with error control and dense output.

Each step computes a fifth-order solution and an embedded fourth-order one from the same seven stages.
Their difference ``err`` estimates the local error; the step is accepted when

    ratio = rms( err / (atol + rtol * max(|y|, |y_new|)) ) <= 1

and the next step size is ``h * clamp(safety * ratio**(-1/5), dfactor, ifactor)`` either way. The last
stage is ``f`` at the new point ("first same as last"), so an accepted step costs six new evaluations.
Requested output times that fall inside a step are filled in with a fourth-order quartic interpolant,
so the step sizes are chosen by accuracy alone, not by how densely the output is sampled.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from ..errors import StepBudgetExceeded, StepSizeUnderflow
from .rk import DOPRI5, DOPRI5_MID, combine, quartic_interpolant, rk_step_fast
from .stats import SolveStats

__all__ = ["integrate_dopri5", "initial_step", "step_factor", "StepBudgetExceeded", "StepSizeUnderflow"]

Func = Callable[[Tensor, Tensor], Tensor]
Norm = Callable[[Tensor], Tensor]
Tol = Union[float, Tensor]

SAFETY = 0.9
assert DOPRI5.b_hat is not None
#: weights of the local error estimate: fifth-order minus embedded fourth-order solution
ERROR_WEIGHTS = [b - bh for b, bh in zip(DOPRI5.b, DOPRI5.b_hat)]
# the step's coefficients, then the error weights: one multiplication by h gives every product a step needs
_N_STEP = len(DOPRI5.plan.coefficients)
_ERROR_TERMS = [(i, _N_STEP + n) for n, i in enumerate(i for i, w in enumerate(ERROR_WEIGHTS) if w != 0)]
_COEFFICIENTS = [*DOPRI5.plan.coefficients, *(float(w) for w in ERROR_WEIGHTS if w != 0)]
IFACTOR = 10.0  # largest growth of the step size from one step to the next
DFACTOR = 0.2  # largest shrink


def _rms(x: Tensor) -> Tensor:
    return x.detach().pow(2).mean().sqrt()


def _local_error(ks: list[Tensor], scaled: Sequence[Tensor]) -> Tensor:
    """``h * sum_i (b_i - b_hat_i) k_i``: the fifth-order minus the embedded fourth-order step."""
    (i0, q0), *rest = _ERROR_TERMS
    err = scaled[q0] * ks[i0]
    for i, q in rest:
        err = err + scaled[q] * ks[i]
    return err


def _error_ratio(err: Tensor, y: Tensor, y_new: Tensor, rtol: Tol, atol: Tol, norm: Norm) -> float:
    scale = atol + rtol * torch.maximum(y.detach().abs(), y_new.detach().abs())
    return float(norm(err.detach() / scale))


def step_factor(ratio: float, order: int) -> float:
    """The next step over this one: ``safety * ratio**(-1/order)``, clamped to ``[DFACTOR, IFACTOR]``.

    The local error of a method of order p (its embedded pair's order p - 1 sets the estimate; the exponent
    uses p, as torchdiffeq and Hairer's DOPRI5 do) scales like h**p, so this factor aims the next error ratio at
    about ``safety**p``. After a rejected step (ratio > 1) the step never grows.
    """
    if ratio == 0:
        return IFACTOR
    factor = min(IFACTOR, max(DFACTOR, SAFETY * ratio ** (-1.0 / order)))
    return min(factor, 1.0) if ratio > 1.0 else factor


def initial_step(func: Func, t0: float, y0: Tensor, f0: Tensor, direction: float, rtol: Tol, atol: Tol, order: int,
                 norm: Norm = _rms) -> float:
    """Hairer, Nørsett & Wanner's starting step (Solving ODEs I, §II.4): two evaluations of f in all."""
    scale = atol + rtol * y0.detach().abs()
    d0 = float(norm(y0.detach() / scale))
    d1 = float(norm(f0.detach() / scale))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    y1 = y0 + direction * h0 * f0
    f1 = func(torch.as_tensor(t0 + direction * h0, dtype=y0.dtype, device=y0.device), y1)
    d2 = float(norm((f1 - f0).detach() / scale)) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / order)
    return min(100 * h0, h1)


def integrate_dopri5(
    func: Func,
    y0: Tensor,
    t: Tensor,
    rtol: Tol,
    atol: Tol,
    max_steps: int,
    first_step: Optional[float],
    stats: SolveStats,
    norm: Optional[Norm] = None,
) -> Tensor:
    norm = norm or _rms
    times = [float(v) for v in t.detach().cpu()]
    t_end = times[-1]
    direction = 1.0 if t_end > times[0] else -1.0
    dtype, device = y0.dtype, y0.device

    def as_time(value: float) -> Tensor:
        return torch.as_tensor(value, dtype=dtype, device=device)

    if len(times) == 1:  # a single time: the solution is the initial state (a copy), as in torchdiffeq
        return torch.stack([y0])
    t_now, y = times[0], y0
    f_now = func(as_time(t_now), y)
    _check_finite_field(f_now, t_now)
    if first_step is None:
        h = initial_step(func, t_now, y, f_now, direction, rtol, atol, DOPRI5.order, norm)
    else:
        h = first_step
    h = min(h, abs(t_end - times[0]))

    outputs = [y0]
    j = 1
    tiny = 4 * torch.finfo(dtype).eps
    coefficients = torch.tensor(_COEFFICIENTS, dtype=dtype, device=device)
    nonfinite_trials = 0  # consecutive trial steps rejected because they produced NaN or inf
    while j < len(times):
        if stats.n_steps + stats.n_rejected >= max_steps:
            raise StepBudgetExceeded(
                f"dopri5 used its whole budget of max_steps={max_steps} steps (accepted and rejected) and "
                f"reached t={t_now:g} of [{times[0]:g}, {t_end:g}]; the last step size was {h:.3g}. The problem "
                "may be stiff or the tolerances too tight for it: loosen rtol/atol, raise max_steps, or use a "
                "fixed-step method with a small step_size."
            )
        remaining = abs(t_end - t_now)
        if h >= remaining * (1 - 1e-12):  # last step: land exactly on the end time
            h = remaining
        if h != h:  # NaN: the error control has nothing to go on (a non-finite error estimate or tolerance)
            raise FloatingPointError(
                f"dopri5's step size became NaN at t={t_now:g}: the error estimate is not a number. The tolerances "
                "or the vector field's values there are not finite."
            )
        if h <= tiny * max(1.0, abs(t_now)):
            if nonfinite_trials:
                raise FloatingPointError(
                    f"the vector field returned NaN or infinite values at every trial step from t={t_now:g}, "
                    f"down to a step of {h:.3g}: the field is not finite there (or the solution leaves its domain)"
                )
            raise StepSizeUnderflow(
                f"dopri5's step size underflowed ({h:.3g}) at t={t_now:g}: the error control cannot be met. "
                "The solution may be blowing up or the vector field may be discontinuous there."
            )
        h_signed = as_time(direction * h)
        scaled = (h_signed * coefficients).unbind()  # h times every coefficient of the step, at once
        y_new, ks = rk_step_fast(func, DOPRI5, as_time(t_now), y, scaled, f0=f_now)
        err = _local_error(ks, scaled)
        ratio = _error_ratio(err, y, y_new, rtol, atol, norm)
        if ratio != ratio or ratio == float("inf"):  # NaN or inf: the trial step blew up, shrink hard
            stats.n_rejected += 1
            nonfinite_trials += 1
            h *= DFACTOR
            continue
        nonfinite_trials = 0
        if ratio <= 1.0:
            t_new = t_end if h == remaining else t_now + direction * h
            f_new = ks[-1]  # FSAL: f(t_new, y_new)
            stats.record_step(t_now, direction * h)
            while j < len(times) and (times[j] - t_new) * direction <= 0:
                if times[j] == t_new:
                    outputs.append(y_new)
                else:
                    y_mid = combine(y, h_signed, DOPRI5_MID, ks)
                    theta = as_time((times[j] - t_now) / (t_new - t_now))
                    outputs.append(quartic_interpolant(y, y_new, y_mid, f_now, f_new, h_signed, theta))
                j += 1
            t_now, y, f_now = t_new, y_new, f_new
        else:
            stats.n_rejected += 1
        h = h * step_factor(ratio, DOPRI5.order)
    return torch.stack(outputs)


def _check_finite_field(f: Tensor, t: float) -> None:
    if not torch.isfinite(f).all():
        raise FloatingPointError(f"the vector field returned NaN or infinite values at t={t:g}, at the initial state")
