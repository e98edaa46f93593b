"""Neural-GODE (chapter 8, in preparation): parameters that vary with depth as B-spline expansions.

Yu, Miao and Wu let the weights of an ODE-Net's field vary with the integration time ``t`` as
``θ(t) = Σ_i B_{i,k}(t) ξ_i`` (their Eq. 6): ``m`` B-spline basis functions of degree ``k`` with learned
coefficients ``ξ_i``. A Neural ODE (``k = 0, m = 1``) and a ResNet (degree 0, one basis function per Euler step)
are the two ends (Eqs. 7-8). So far this module holds the basis:

- :func:`bspline_basis`: the Cox-de Boor recursion, in the graph, on the device of ``t``, for the two knot
  choices the chapter compares.

The knots matter. The paper's (Sec. 2.3, ``knots="uniform"``) are ``t_i = i T / (k + m)``, ``i = 0..k+m``: with
``k >= 1`` the basis sums to 0 at ``t = 0`` (the first Euler step sees zero weights) and to 1 only on
``[t_k, t_m]``, e.g. on 15 of the 20 Euler points of step 0.05 for ``m = 8, k = 1`` and on 5 of them for
``k = 5``. Open uniform ("clamped") knots repeat ``0`` and ``T`` ``k + 1`` times and space the rest evenly: a
partition of unity on all of ``[0, T]``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["KNOT_CHOICES", "bspline_basis", "bspline_knots"]

KNOT_CHOICES = ("clamped", "uniform")


def _check(n_basis: int, degree: int, t_end: float, knots: str) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
    if isinstance(n_basis, bool) or not isinstance(n_basis, int) or n_basis < 1:
        raise ValueError(f"n_basis must be a positive integer, got {n_basis!r}")
    if knots not in KNOT_CHOICES:
        raise ValueError(f"knots must be one of {KNOT_CHOICES}, got {knots!r}")
    if knots == "clamped" and n_basis < degree + 1:
        raise ValueError(f"clamped knots need n_basis >= degree + 1 = {degree + 1} (a spline of degree {degree} has "
                         f"at least {degree + 1} basis functions), got n_basis={n_basis}")
    if isinstance(t_end, bool) or not isinstance(t_end, (int, float)) or not math.isfinite(t_end) or t_end <= 0:
        raise ValueError(f"t_end must be a positive finite number, got {t_end!r}")


def bspline_knots(n_basis: int, degree: int, t_end: float = 1.0, knots: str = "clamped",
                  dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """The knot vector (``n_basis + degree + 1`` knots) of :func:`bspline_basis`."""
    _check(n_basis, degree, t_end, knots)
    if knots == "uniform":  # the paper's: t_i = i T / (k + m)
        return torch.arange(n_basis + degree + 1, dtype=dtype, device=device) * (t_end / (n_basis + degree))
    pieces = n_basis - degree  # the number of non-empty knot spans
    inner = torch.arange(1, pieces, dtype=dtype, device=device) * (t_end / pieces)
    zeros = torch.zeros(degree + 1, dtype=dtype, device=device)
    ends = torch.full((degree + 1,), float(t_end), dtype=dtype, device=device)
    return torch.cat([zeros, inner, ends])


def bspline_basis(t: Tensor, n_basis: int, degree: int, t_end: float = 1.0, knots: str = "clamped") -> Tensor:
    """The B-spline basis ``B_{i,k}(t)`` (Eqs. 6-8) at the times ``t``: a tensor of shape ``(len(t), n_basis)``.

    Computed by the Cox-de Boor recursion in ``t``'s dtype and on its device, in the graph (differentiable in
    ``t`` between knots), for any ``t_end > 0``. Degree 0 uses half-open spans ``[t_i, t_{i+1})`` (Eq. 8); a time
    a few units of round-off below a knot counts as on it.

    Args:
        t: a 1-D floating-point tensor of times in ``[0, t_end]``.
        n_basis: ``m``, the number of basis functions.
        degree: ``k``, their polynomial degree.
        t_end: ``T``, the end of the interval.
        knots: ``"clamped"`` (open uniform: ``k + 1`` knots at each end, the rest evenly spaced; a partition of
            unity on ``[0, T]``, ``t = T`` included) or ``"uniform"`` (the paper's ``t_i = i T / (k + m)``; the
            basis sums to 1 only on ``[t_k, t_m]`` and is 0 at ``t = 0`` for ``k >= 1`` and at ``t = T``).
    """
    _check(n_basis, degree, t_end, knots)
    if not isinstance(t, Tensor) or t.dim() != 1 or not t.is_floating_point():
        got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"t must be a 1-D floating-point tensor of times, got {got}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"t must be finite; got non-finite times at positions "
                         f"{torch.nonzero(~torch.isfinite(t)).flatten().tolist()[:5]}")
    low, high = (float(t.detach().min()), float(t.detach().max())) if len(t) else (0.0, 0.0)
    if low < 0 or high > t_end:
        raise ValueError(f"t must lie in [0, t_end] = [0, {t_end}]; got times from {low} to {high}")
    u = bspline_knots(n_basis, degree, t_end, knots, dtype=t.dtype, device=t.device)
    x = t[:, None]
    # degree 0 on half-open spans, (len(t), len(u) - 1); a time within round-off below a knot counts as on it,
    # so that a solver's grid t0 + n h lands in span n (as in timevarying.PiecewiseConstantParameters)
    slack = 64 * torch.finfo(t.dtype).eps * max(1.0, float(t_end))
    shifted = x.detach() + slack
    basis = ((shifted >= u[:-1]) & (shifted < u[1:])).to(t.dtype)
    if knots == "clamped":
        # t = T belongs to the last non-empty span (the spline is continuous from the left there)
        last = len(u) - degree - 2
        at_end = (t == t_end).to(t.dtype)[:, None]
        basis = basis * (1 - at_end) + at_end * torch.nn.functional.one_hot(
            torch.tensor(last, device=t.device), len(u) - 1).to(t.dtype)
    for d in range(1, degree + 1):
        left_den = u[d:-1] - u[:-d - 1]  # t_{i+d} - t_i
        right_den = u[d + 1:] - u[1:-d]  # t_{i+d+1} - t_{i+1}
        left = torch.where(left_den > 0, (x - u[:-d - 1]) / torch.where(left_den > 0, left_den, 1.0), 0.0)
        right = torch.where(right_den > 0, (u[d + 1:] - x) / torch.where(right_den > 0, right_den, 1.0), 0.0)
        basis = left * basis[:, :-1] + right * basis[:, 1:]
    return basis
