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
    def plan(self) -> StepPlan:
        """Where each nonzero coefficient goes, for :func:`rk_step_fast` (built once per tableau)."""
        return StepPlan.of(self)


class StepPlan:
    """A tableau's nonzero coefficients in one vector, and for each stage and weight where to find its own.

    ``coefficients`` lists, in order, the nonzero ``a_ij`` of every stage, the nonzero ``b_i`` and each distinct
    nonzero ``c_i``. ``stage_terms[i]`` holds ``(j, q)`` pairs: stage ``i`` adds coefficient ``q`` times ``k_j``;
    ``stage_time[i]`` is the index of ``c_i`` (None for ``c_i = 0``); ``weights`` holds the ``(i, q)`` of the
    solution. Multiplying the step size by :meth:`vector` gives every product ``h * coefficient`` at once.
    """

    def __init__(self, coefficients: tuple[float, ...], stage_terms: tuple[tuple[tuple[int, int], ...], ...],
                 stage_time: tuple[Optional[int], ...], weights: tuple[tuple[int, int], ...]) -> None:
        self.coefficients, self.stage_terms, self.stage_time, self.weights = (
            coefficients, stage_terms, stage_time, weights)
        self._vectors: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    @classmethod
    def of(cls, tableau: ButcherTableau) -> StepPlan:
        coefficients: list[float] = []

        def index(value: F) -> int:
            coefficients.append(float(value))
            return len(coefficients) - 1

        stage_terms = tuple(tuple((j, index(a)) for j, a in enumerate(row) if a != 0) for row in tableau.a)
        weights = tuple((i, index(b)) for i, b in enumerate(tableau.b) if b != 0)
        c_index: dict[F, int] = {}
        for c in tableau.c:
            if c != 0 and c not in c_index:
                c_index[c] = index(c)
        stage_time = tuple(c_index.get(c) for c in tableau.c)
        return cls(tuple(coefficients), stage_terms, stage_time, weights)

    def vector(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The coefficients as a tensor of this dtype and device (made once per pair)."""
        key = (dtype, device)
        if key not in self._vectors:
            self._vectors[key] = torch.tensor(self.coefficients, dtype=dtype, device=device)
        return self._vectors[key]


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
    scaled: Sequence[Tensor],
    f0: Optional[Tensor] = None,
) -> tuple[Tensor, list[Tensor]]:
    """:func:`rk_step` with the products ``h * coefficient`` computed beforehand: the same step, bit for bit.

    ``scaled`` holds the 0-dim tensors ``h * tableau.plan.vector(...)`` (one multiplication for every
    coefficient of a step, or for every step of a grid at once, where :func:`rk_step` makes one per term), in
    the order of :class:`StepPlan`. Zero coefficients cost nothing, and a stage time ``t + c h`` is computed
    once per distinct ``c``. The step size carries no gradient to the times this way: the solvers use this step
    when nothing asks for ``dL/dt`` through the step sizes, and :func:`rk_step` when something does.
    """
    plan = tableau.plan
    stage_times: dict[int, Tensor] = {}
    ks: list[Tensor] = []
    for i, (terms, c_index) in enumerate(zip(plan.stage_terms, plan.stage_time)):
        if i == 0 and f0 is not None:
            ks.append(f0)
            continue
        y_stage = y
        for j, q in terms:
            y_stage = y_stage + scaled[q] * ks[j]
        if c_index is None:  # c_i = 0
            time = t
        elif c_index in stage_times:
            time = stage_times[c_index]
        else:
            time = stage_times[c_index] = t + scaled[c_index]
        ks.append(func(time, y_stage))
    y_next = y
    for i, q in plan.weights:
        y_next = y_next + scaled[q] * ks[i]
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
