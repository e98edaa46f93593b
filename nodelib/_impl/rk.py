"""Explicit Runge–Kutta methods written as Butcher tableaus, and the one step function they share.

A method with ``s`` stages is given by its tableau ``(c, A, b)``::

    k_i = f(t + c_i h, y + h * sum_j A_ij k_j)      (j < i: the method is explicit)
    y_next = y + h * sum_i b_i k_i

Embedded pairs (Dormand–Prince) carry a second weight vector ``b_hat`` of lower order; the difference
between the two solutions estimates the local error and drives the step-size control.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as F
from functools import cached_property
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

Func = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ButcherTableau:
    """The coefficients of an explicit Runge–Kutta method (exact fractions, converted once per dtype)."""

    name: str
    order: int
    c: Sequence[F]
    a: Sequence[Sequence[F]]  # row i holds A_i0 ... A_i(i-1)
    b: Sequence[F]
    b_hat: Optional[Sequence[F]] = None  # weights of the embedded lower-order solution, if any
    fsal: bool = False  # "first same as last": the last stage is f at the new point, reused next step

    @property
    def stages(self) -> int:
        return len(self.b)

    @cached_property
    def floats(self) -> FloatTableau:
        """The coefficients as Python floats, zero entries dropped (converted once, for :func:`rk_step_fast`)."""
        return FloatTableau(
            c=tuple(float(c) for c in self.c),
            a=tuple(tuple((j, float(a)) for j, a in enumerate(row) if a != 0) for row in self.a),
            b=tuple((i, float(b)) for i, b in enumerate(self.b) if b != 0),
        )


@dataclass(frozen=True)
class FloatTableau:
    """A tableau's nonzero coefficients as floats: ``a[i]`` and ``b`` hold ``(index, value)`` pairs."""

    c: tuple[float, ...]
    a: tuple[tuple[tuple[int, float], ...], ...]
    b: tuple[tuple[int, float], ...]


EULER = ButcherTableau("euler", 1, c=[F(0)], a=[[]], b=[F(1)])

MIDPOINT = ButcherTableau("midpoint", 2, c=[F(0), F(1, 2)], a=[[], [F(1, 2)]], b=[F(0), F(1)])

# The classical fourth-order method found in every numerical-analysis textbook.
RK4 = ButcherTableau(
    "rk4",
    4,
    c=[F(0), F(1, 2), F(1, 2), F(1)],
    a=[[], [F(1, 2)], [F(0), F(1, 2)], [F(0), F(0), F(1)]],
    b=[F(1, 6), F(1, 3), F(1, 3), F(1, 6)],
)

# Kutta's 3/8 rule, also fourth order. torchdiffeq's method="rk4" is this one, so the two packages
# agree to round-off when nodelib is asked for "rk38".
RK38 = ButcherTableau(
    "rk38",
    4,
    c=[F(0), F(1, 3), F(2, 3), F(1)],
    a=[[], [F(1, 3)], [F(-1, 3), F(1)], [F(1), F(-1), F(1)]],
    b=[F(1, 8), F(3, 8), F(3, 8), F(1, 8)],
)

# Dormand & Prince (1980), RK5(4)7FSAL: fifth-order solution, fourth-order embedded estimate.
DOPRI5 = ButcherTableau(
    "dopri5",
    5,
    c=[F(0), F(1, 5), F(3, 10), F(4, 5), F(8, 9), F(1), F(1)],
    a=[
        [],
        [F(1, 5)],
        [F(3, 40), F(9, 40)],
        [F(44, 45), F(-56, 15), F(32, 9)],
        [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
        [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)],
        [F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84)],
    ],
    b=[F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), F(0)],
    b_hat=[F(5179, 57600), F(0), F(7571, 16695), F(393, 640), F(-92097, 339200), F(187, 2100), F(1, 40)],
    fsal=True,
)

# Weights that give the solution at the middle of a Dormand–Prince step, y(t + h/2), to fourth order
# (Shampine 1986, "Some practical Runge-Kutta formulas"). Used for dense output between steps.
DOPRI5_MID = [
    F(6025192743, 30085553152) / 2,
    F(0),
    F(51252292925, 65400821598) / 2,
    F(-2691868925, 45128329728) / 2,
    F(187940372067, 1594534317056) / 2,
    F(-1776094331, 19743644256) / 2,
    F(11237099, 235043384) / 2,
]


def rk_step(
    func: Func,
    tableau: ButcherTableau,
    t: Tensor,
    y: Tensor,
    h: Tensor,
    f0: Optional[Tensor] = None,
) -> tuple[Tensor, list[Tensor]]:
    """One explicit Runge–Kutta step of size ``h`` from ``(t, y)``.

    Returns the new state and the list of stage derivatives ``k`` (``k[0]`` is ``f(t, y)``; pass it in as
    ``f0`` when it is already known, as in an FSAL method, to save one evaluation).
    """
    ks: list[Tensor] = []
    for i in range(tableau.stages):
        if i == 0 and f0 is not None:
            ks.append(f0)
            continue
        y_stage = y
        for a_ij, k_j in zip(tableau.a[i], ks):
            if a_ij != 0:
                y_stage = y_stage + (h * float(a_ij)) * k_j
        ks.append(func(t + h * float(tableau.c[i]), y_stage))
    y_next = y
    for b_i, k_i in zip(tableau.b, ks):
        if b_i != 0:
            y_next = y_next + (h * float(b_i)) * k_i
    return y_next, ks


def rk_step_fast(
    func: Func,
    tableau: ButcherTableau,
    t: Tensor,
    y: Tensor,
    h: float,
    t_end: Optional[Tensor] = None,
    f0: Optional[Tensor] = None,
) -> tuple[Tensor, list[Tensor]]:
    """:func:`rk_step` with the step size as a Python float: the same step in fewer tensor operations.

    Each term ``h a_ij k_j`` is one fused ``torch.add(..., alpha=h * a_ij)`` (no tensor for ``h``, no separate
    product), zero coefficients cost nothing, and a stage time ``t + c h`` is computed once per distinct ``c``
    (``t_end``, when given, is used for ``c = 1``). The times carry no gradient: the solvers use this step when
    nothing asks for ``dL/dt`` through the grid, and :func:`rk_step` when something does. Values agree with
    :func:`rk_step` to round-off (a fused multiply-add rounds once where a product and a sum round twice).
    """
    coeffs = tableau.floats
    stage_times: dict[float, Tensor] = {0.0: t}
    if t_end is not None:
        stage_times[1.0] = t_end
    ks: list[Tensor] = []
    for i, (c_i, row) in enumerate(zip(coeffs.c, coeffs.a)):
        if i == 0 and f0 is not None:
            ks.append(f0)
            continue
        y_stage = y
        for j, a_ij in row:
            y_stage = torch.add(y_stage, ks[j], alpha=h * a_ij)
        time = stage_times.get(c_i)
        if time is None:
            time = stage_times[c_i] = t + h * c_i
        ks.append(func(time, y_stage))
    y_next = y
    for i, b_i in coeffs.b:
        y_next = torch.add(y_next, ks[i], alpha=h * b_i)
    return y_next, ks


def combine(y: Tensor, h: Tensor, weights: Sequence[F], ks: Sequence[Tensor]) -> Tensor:
    """``y + h * sum_i w_i k_i``, skipping zero weights."""
    out = y
    for w, k in zip(weights, ks):
        if w != 0:
            out = out + (h * float(w)) * k
    return out


def quartic_interpolant(y0: Tensor, y1: Tensor, y_mid: Tensor, f0: Tensor, f1: Tensor, h: Tensor, theta: Tensor) -> Tensor:
    """Evaluate at ``theta`` in [0, 1] the quartic p with p(0)=y0, p(1)=y1, p(1/2)=y_mid, p'(0)=h f0, p'(1)=h f1.

    Writing p(θ) = y0 + h f0 θ + c2 θ² + c3 θ³ + c4 θ⁴ and imposing the three remaining conditions gives
    a 3×3 linear system whose solution is the closed form below (checked in the tests).
    """
    d0 = h * f0
    d1 = h * f1
    c2 = -11 * y0 - 5 * y1 + 16 * y_mid - 4 * d0 + d1
    c3 = 18 * y0 + 14 * y1 - 32 * y_mid + 5 * d0 - 3 * d1
    c4 = -8 * y0 - 8 * y1 + 16 * y_mid - 2 * d0 + 2 * d1
    return y0 + theta * (d0 + theta * (c2 + theta * (c3 + theta * c4)))
