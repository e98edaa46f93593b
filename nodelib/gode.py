"""Neural-GODE (chapter 8): parameters that vary with depth as B-spline expansions, and the GODE view.

Yu, Miao and Wu let the weights of an ODE-Net's field vary with the integration time ``t`` as
``θ(t) = Σ_i B_{i,k}(t) ξ_i`` (their Eq. 6): ``m`` B-spline basis functions of degree ``k`` with learned
coefficients ``ξ_i``. A Neural ODE (``k = 0, m = 1``) and a ResNet (degree 0, one basis function per Euler step)
are the two ends (Eqs. 7-8). The module holds:

- :func:`bspline_basis` and :class:`BSplineBasis`: the Cox-de Boor recursion, in the graph, on the device of
  ``t``, for the two knot choices the chapter compares;
- :class:`BSplineConv` (the paper's "convt"): a bias-free convolution whose kernel is ``Σ_i B_i(t) ξ_i``, built
  on the core's :class:`~nodelib.timevarying.BasisExpansionParameters`;
- :class:`GODEField`: the ODE block's field, (GroupNorm-ReLU-convt) twice, registered as the classifier body
  ``"gode"`` of :mod:`nodelib.classification` (the stem and head of chapter 5);
- the generalized-ODE view (Eqs. 2-3 and 5): :class:`Family` (:data:`FAMILIES`: Gaussian, Bernoulli, Poisson with
  their canonical links) and :class:`GODERegressor`, ``dZ/dt = σ(Z β(t) + b(t))``, ``η = g(μ) = Z(T) θ``; its
  baseline, the GLM without a flow, by maximum likelihood or with a ridge penalty chosen on validation
  (:func:`fit_glm`, :func:`tune_glm`).

The knots matter. The paper's (Sec. 2.3, ``knots="uniform"``) are ``t_i = i T / (k + m)``, ``i = 0..k+m``: with
``k >= 1`` the basis sums to 0 at ``t = 0`` (the first Euler step sees zero weights) and to 1 only on
``[t_k, t_m]``, e.g. on 15 of the 20 Euler points of step 0.05 for ``m = 8, k = 1`` and on 5 of them for
``k = 5``. Open uniform ("clamped") knots repeat ``0`` and ``T`` ``k + 1`` times and space the rest evenly: a
partition of unity on all of ``[0, T]``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._impl.checks import check_positive, check_positive_int
from .blocks import ODEBlock
from .classification import BodySpec, register_body
from .config import SolverConfig
from .layers import conv_class, group_norm
from .timevarying import BasisExpansionParameters, TimeVaryingField

__all__ = ["KNOT_CHOICES", "INITS", "bspline_basis", "bspline_knots", "BSplineBasis", "BSplineConv", "GODEField",
           "Family", "FAMILIES", "GODERegressor", "gode_parameter_count", "pearson_dispersion", "GLMFit", "fit_glm",
           "tune_glm"]

#: How :class:`BSplineConv` initialises its coefficients.
INITS = ("independent", "shared")

KNOT_CHOICES = ("clamped", "uniform")


def _check(n_basis: int, degree: int, t1: float, knots: str) -> None:
    check_positive_int("degree", degree, minimum=0)
    check_positive_int("n_basis", n_basis)
    if knots not in KNOT_CHOICES:
        raise ValueError(f"knots must be one of {KNOT_CHOICES}, got {knots!r}")
    if knots == "clamped" and n_basis < degree + 1:
        raise ValueError(f"clamped knots need n_basis >= degree + 1 = {degree + 1} (a spline of degree {degree} has "
                         f"at least {degree + 1} basis functions), got n_basis={n_basis}")
    check_positive("t1", t1)


def bspline_knots(n_basis: int, degree: int, t1: float = 1.0, knots: str = "clamped",
                  dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """The knot vector (``n_basis + degree + 1`` knots) of :func:`bspline_basis`."""
    _check(n_basis, degree, t1, knots)
    if knots == "uniform":  # the paper's: t_i = i T / (k + m)
        return torch.arange(n_basis + degree + 1, dtype=dtype, device=device) * (t1 / (n_basis + degree))
    pieces = n_basis - degree  # the number of non-empty knot spans
    inner = torch.arange(1, pieces, dtype=dtype, device=device) * (t1 / pieces)
    zeros = torch.zeros(degree + 1, dtype=dtype, device=device)
    ends = torch.full((degree + 1,), float(t1), dtype=dtype, device=device)
    return torch.cat([zeros, inner, ends])


def _check_times(t: Any, t1: float) -> None:
    if not isinstance(t, Tensor) or t.dim() != 1 or not t.is_floating_point():
        got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"t must be a 1-D floating-point tensor of times, got {got}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"t must be finite; got non-finite times at positions "
                         f"{torch.nonzero(~torch.isfinite(t)).flatten().tolist()[:5]}")
    low, high = (float(t.detach().min()), float(t.detach().max())) if len(t) else (0.0, 0.0)
    if low < 0 or high > t1:
        raise ValueError(f"t must lie in [0, t1] = [0, {t1}]; got times from {low} to {high}")


def _cox_de_boor(t: Tensor, u: Tensor, degree: int, t1: float, clamped: bool) -> Tensor:
    """The recursion of Eqs. 6-8 at the (checked) times ``t`` for the knots ``u``: shape ``(len(t), len(u) - degree
    - 1)``."""
    x = t[:, None]
    # degree 0 on half-open spans, (len(t), len(u) - 1); a time within round-off below a knot counts as on it,
    # so that a solver's grid t0 + n h lands in span n (as in timevarying.PiecewiseConstantParameters)
    slack = 64 * torch.finfo(t.dtype).eps * max(1.0, float(t1))
    shifted = x.detach() + slack
    basis = ((shifted >= u[:-1]) & (shifted < u[1:])).to(t.dtype)
    # t = T belongs to the last non-empty span, as in de Boor's and scipy's convention (the spline is continuous
    # from the left there): for degree 0 and one basis function, B_00(T) = 1, a Neural ODE at every time
    last = len(u) - degree - 2 if clamped else len(u) - 2
    at_end = (x.detach() >= t1).to(t.dtype)
    basis = basis * (1 - at_end) + at_end * (torch.arange(len(u) - 1, device=t.device) == last).to(t.dtype)
    for d in range(1, degree + 1):
        left_den = u[d:-1] - u[:-d - 1]  # t_{i+d} - t_i
        right_den = u[d + 1:] - u[1:-d]  # t_{i+d+1} - t_{i+1}
        left = torch.where(left_den > 0, (x - u[:-d - 1]) / torch.where(left_den > 0, left_den, 1.0), 0.0)
        right = torch.where(right_den > 0, (u[d + 1:] - x) / torch.where(right_den > 0, right_den, 1.0), 0.0)
        basis = left * basis[:, :-1] + right * basis[:, 1:]
    return basis


def bspline_basis(t: Tensor, n_basis: int, degree: int, t1: float = 1.0, knots: str = "clamped") -> Tensor:
    """The B-spline basis ``B_{i,k}(t)`` (Eqs. 6-8) at the times ``t``: a tensor of shape ``(len(t), n_basis)``.

    Computed by the Cox-de Boor recursion in ``t``'s dtype and on its device, in the graph (differentiable in
    ``t`` between knots), for any ``t1 > 0``. Degree 0 uses half-open spans ``[t_i, t_{i+1})`` (Eq. 8); a time
    a few units of round-off below a knot counts as on it, and ``t = T`` counts as in the last non-empty span
    (de Boor's convention; it matters only for degree 0, where otherwise every basis function would vanish at T).

    Args:
        t: a 1-D floating-point tensor of times in ``[0, t1]``.
        n_basis: ``m``, the number of basis functions.
        degree: ``k``, their polynomial degree.
        t1: ``T``, the end of the interval.
        knots: ``"clamped"`` (open uniform: ``k + 1`` knots at each end, the rest evenly spaced; a partition of
            unity on ``[0, T]``, ``t = T`` included) or ``"uniform"`` (the paper's ``t_i = i T / (k + m)``; the
            basis sums to 1 only on ``[t_k, t_m]`` and is 0 at ``t = 0`` for ``k >= 1`` and at ``t = T``).
    """
    _check(n_basis, degree, t1, knots)
    _check_times(t, t1)
    u = bspline_knots(n_basis, degree, t1, knots, dtype=t.dtype, device=t.device)
    return _cox_de_boor(t, u, degree, float(t1), knots == "clamped")


class BSplineBasis(nn.Module):
    """The basis as a callable of one time: ``basis(t)`` is the 1-D tensor ``(B_0(t), ..., B_{m-1}(t))``.

    What :class:`~nodelib.timevarying.BasisExpansionParameters` takes; the knots are computed once per dtype and
    device. Unlike :func:`bspline_basis` it accepts times outside ``[0, T]`` and holds the basis constant there
    (``B(t) = B(0)`` before, ``B(T)`` after): an adaptive solver such as torchdiffeq's dopri5 steps past the end
    of the interval and interpolates back, so the field is evaluated a little beyond ``T``. Non-finite times are
    errors (checked on the CPU only: on an accelerator the check would stop the device at every evaluation).
    """

    def __init__(self, n_basis: int, degree: int, t1: float = 1.0, knots: str = "clamped") -> None:
        super().__init__()
        _check(n_basis, degree, t1, knots)
        self.n_basis, self.degree, self.t1, self.knots = n_basis, degree, float(t1), knots
        self._knots: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def extra_repr(self) -> str:
        return f"n_basis={self.n_basis}, degree={self.degree}, t1={self.t1}, knots={self.knots!r}"

    def knot_vector(self, dtype: torch.dtype = torch.float64, device: Optional[torch.device] = None) -> Tensor:
        key = (dtype, torch.device(device or "cpu"))
        if key not in self._knots:
            self._knots[key] = bspline_knots(self.n_basis, self.degree, self.t1, self.knots, dtype, key[1])
        return self._knots[key]

    def forward(self, t: Any) -> Tensor:
        t = torch.as_tensor(t)
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
        times = t.reshape(1) if t.dim() == 0 else t
        if times.device.type == "cpu" and not bool(torch.isfinite(times).all()):
            raise ValueError(f"the basis needs finite times, got {times.tolist()[:5]}")
        times = times.clamp(0.0, self.t1)
        values = _cox_de_boor(times, self.knot_vector(times.dtype, times.device), self.degree, self.t1,
                              self.knots == "clamped")
        return values[0] if t.dim() == 0 else values

    def mean_square_sum(self, points: int = 2001) -> float:
        """``(1/T) ∫_0^T Σ_i B_i(t)^2 dt`` (trapezoid rule): the variance factor of ``θ(t)`` when the ``ξ_i`` are
        independent with equal variance."""
        t = torch.linspace(0, self.t1, points, dtype=torch.float64)
        return float(torch.trapezoid(self(t).pow(2).sum(1), t)) / self.t1


class _Conv(nn.Module):
    """The template a :class:`BSplineConv` expands: a bias-free convolution called as ``(t, x)``."""

    def __init__(self, channels: int, kernel_size: int, *, dims: int = 2) -> None:
        super().__init__()
        self.conv = conv_class(dims)(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.conv(x)


class BSplineConv(nn.Module):
    """The paper's "convt": a bias-free convolution whose kernel at time ``t`` is ``θ(t) = Σ_i B_i(t) ξ_i``.

    No time channel is appended (the time enters only through the kernel). Called as ``conv(t, x)``.

    Args:
        channels: input and output channels.
        n_basis, degree, t1, knots: the basis (see :func:`bspline_basis`).
        dims: 2 for images ``(B, C, H, W)``, 1 for signals ``(B, C, L)``.
        kernel_size: an odd size (3 in the paper); the padding keeps the spatial shape.
        init: ``"independent"`` (default): each ``ξ_i`` drawn as PyTorch draws a convolution's kernel, then all
            scaled by ``1 / sqrt(mean_t Σ_i B_i(t)^2)``, so that ``θ(t)`` has an ordinary convolution's scale
            averaged over ``[0, T]`` (without the factor it would be up to ``sqrt(m)`` times smaller where several
            basis functions overlap); with degree 0 the factor is 1 and each piece is an ordinary convolution.
            ``"shared"``: every ``ξ_i`` the same draw, so ``θ(t)`` starts as one ordinary kernel times ``Σ_i
            B_i(t)`` (constant in ``t`` for clamped knots: training starts from a Neural ODE).
    """

    def __init__(self, channels: int, n_basis: int, degree: int = 1, t1: float = 1.0, knots: str = "clamped", *,
                 dims: int = 2, kernel_size: int = 3, init: str = "independent") -> None:
        super().__init__()
        check_positive_int("channels", channels)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer (the padding keeps the shape), got "
                             f"{kernel_size!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.basis = BSplineBasis(n_basis, degree, t1, knots)
        template = _Conv(channels, kernel_size, dims=dims)
        trajectory = BasisExpansionParameters(template, self.basis, n_basis,
                                              init="random" if init == "independent" else "template")
        if init == "independent":
            with torch.no_grad():
                trajectory.values[0].div_(math.sqrt(self.basis.mean_square_sum()))
        self.field = TimeVaryingField(template, trajectory)
        self.dims, self.channels, self.kernel_size, self.init = dims, channels, kernel_size, init

    @property
    def coefficients(self) -> nn.Parameter:
        """The ``ξ_i``, shape ``(n_basis, channels, channels, kernel_size[, kernel_size])``."""
        values: nn.Parameter = self.field.trajectory.values[0]  # type: ignore[assignment,index]
        return values

    def weight(self, t: Any) -> Tensor:
        """The kernel ``θ(t)`` at one time."""
        return self.field.trajectory(torch.as_tensor(t, dtype=self.coefficients.dtype))["conv.weight"]

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.field(t, x)


class GODEField(nn.Module):
    """The ODE block's field of Neural-GODE: ``n_layers`` times GroupNorm-ReLU-convt (Fig. 1; two in the paper).

    The GroupNorm parameters are constant in time; every convolution's kernel is a B-spline expansion
    (:class:`BSplineConv`). With two layers and 64 channels the block has ``73,728 m + 256`` parameters.
    """

    def __init__(self, channels: int, n_basis: int, degree: int = 1, t1: float = 1.0, knots: str = "clamped", *,
                 n_layers: int = 2, dims: int = 2, init: str = "independent") -> None:
        super().__init__()
        check_positive_int("n_layers", n_layers)
        self.norms = nn.ModuleList([group_norm(channels) for _ in range(n_layers)])
        self.convs = nn.ModuleList([BSplineConv(channels, n_basis, degree, t1, knots, dims=dims, init=init)
                                    for _ in range(n_layers)])
        self.relu = nn.ReLU()

    @property
    def basis(self) -> BSplineBasis:
        basis: BSplineBasis = self.convs[0].basis  # type: ignore[assignment]
        return basis

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        for norm, conv in zip(self.norms, self.convs):
            x = conv(t, self.relu(norm(x)))
        return x


def gode_parameter_count(n_basis: int, in_channels: int = 1, n_layers: int = 2, width: int = 64,
                         n_classes: int = 10) -> int:
    """The parameters of the Neural-GODE classifier (chapter 5's stem and head, :class:`GODEField` body), by
    formula: 133,130 + 73,728 m on MNIST and 134,282 + 73,728 m on CIFAR-10 (Tables 1, 2, 4)."""
    stem = (in_channels * 9 + 1) * width + 2 * width + 2 * ((16 * width + 1) * width) + 2 * width
    head = 2 * width + (width + 1) * n_classes
    return stem + head + n_layers * (2 * width + n_basis * width * width * 9)


# --- the generalized ODE view (Eqs. 2-3, 5) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """An exponential family of Eq. 2 with its canonical link ``g``, so the natural parameter is ``ψ = η``.

    ``nll(η, y)`` is ``-log f(y; ψ = η)`` per observation with ``a(φ) = 1`` (``(b(η) - y η) - c(y)``), the loss a
    model of ``η`` minimises; ``mean`` is ``μ = b'(η) = g^{-1}(η)``; ``variance`` is ``V(μ) = b''(ψ)``, so that
    ``Var(y) = a(φ) V(μ)``; ``deviance`` is the unit deviance ``2 (log f(y; y) - log f(y; μ))``.
    """

    name: str
    link: str
    mean: Callable[[Tensor], Tensor]
    nll: Callable[[Tensor, Tensor], Tensor]
    variance: Callable[[Tensor], Tensor]
    deviance: Callable[[Tensor, Tensor], Tensor]
    support: str

    def check(self, y: Tensor) -> None:
        """A clear error for responses outside the family's support."""
        bad = {"real": ~torch.isfinite(y),
               "binary": (y != 0) & (y != 1),
               "counts": (y < 0) | (y != torch.round(y)) | ~torch.isfinite(y)}[self.support]
        if bool(bad.any()):
            where = torch.nonzero(bad.reshape(-1)).flatten().tolist()[:5]
            raise ValueError(f"the {self.name} family needs {self.support} responses; got "
                             f"{y.reshape(-1)[where].tolist()} at positions {where}")


def _xlogy_ratio(y: Tensor, mu: Tensor) -> Tensor:
    return torch.xlogy(y, y) - torch.xlogy(y, mu)


#: The families of Eq. 2 used in the book, each with its canonical link.
FAMILIES: dict[str, Family] = {
    "gaussian": Family("gaussian", "identity", lambda eta: eta,
                       lambda eta, y: 0.5 * (y - eta) ** 2 + 0.5 * math.log(2 * math.pi),
                       lambda mu: torch.ones_like(mu), lambda y, mu: (y - mu) ** 2, "real"),
    "bernoulli": Family("bernoulli", "logit", torch.sigmoid,
                        lambda eta, y: F.softplus(eta) - y * eta,
                        lambda mu: mu * (1 - mu),
                        lambda y, mu: 2 * (_xlogy_ratio(y, mu) + _xlogy_ratio(1 - y, 1 - mu)), "binary"),
    "poisson": Family("poisson", "log", torch.exp,
                      lambda eta, y: torch.exp(eta) - y * eta + torch.lgamma(y + 1),
                      lambda mu: mu, lambda y, mu: 2 * (_xlogy_ratio(y, mu) - (y - mu)), "counts"),
}


def pearson_dispersion(y: Tensor, mu: Tensor, family: Family, n_parameters: int = 0) -> float:
    """The moment estimate of ``a(φ)``: ``Σ (y - μ)^2 / V(μ) / (n - n_parameters)`` (1 if the family fits the
    variance; e.g. > 1 for overdispersed counts)."""
    if y.shape != mu.shape:
        raise ValueError(f"y and mu must have the same shape, got {tuple(y.shape)} and {tuple(mu.shape)}")
    dof = y.numel() - n_parameters
    if dof < 1:
        raise ValueError(f"need more observations ({y.numel()}) than parameters ({n_parameters})")
    return float(((y - mu) ** 2 / family.variance(mu)).sum()) / dof


#: The first predictor of :func:`fit_glm`: the constant model's, ``g(mean y)``, for each canonical link.
_START = {"identity": lambda m: m, "log": math.log, "logit": lambda m: math.log(m / (1 - m))}


@dataclass(frozen=True)
class GLMFit:
    """A generalized linear model ``η = g(μ) = x β + β_0`` fitted by :func:`fit_glm`: the GODE of Eq. 5 with no
    flow (``T = 0``), the baseline it must beat. ``converged`` says whether Newton's method met its tolerance."""

    family: Family
    coef: Tensor
    intercept: float
    alpha: float
    iterations: int
    converged: bool
    objective: float

    def eta(self, x: Tensor) -> Tensor:
        """The linear predictor (the natural parameter, for a canonical link), in ``x``'s dtype."""
        return (x.to(torch.float64) @ self.coef + self.intercept).to(x.dtype)

    def mean(self, x: Tensor) -> Tensor:
        return self.family.mean(self.eta(x))


def _family(family: Any) -> Family:
    if isinstance(family, Family):
        return family
    if isinstance(family, str) and family in FAMILIES:
        return FAMILIES[family]
    raise ValueError(f"family must be one of {tuple(FAMILIES)} or a Family, got {family!r}")


def fit_glm(x: Tensor, y: Tensor, family: Any = "poisson", alpha: float = 0.0, *, tol: float = 1e-10,
            gtol: float = 1e-9, max_iter: int = 100) -> GLMFit:
    """A GLM with the family's canonical link by maximum likelihood (``alpha = 0``) or ridge-penalised
    likelihood: the minimiser of ``mean_i nll(η_i, y_i) + (alpha / 2) |β|^2`` (the intercept unpenalised; the
    objective of scikit-learn's ``PoissonRegressor(alpha=alpha)``, and of ``LogisticRegression(C=1 / (alpha n))``
    for the Bernoulli family), by Newton's method with step halving, in float64. With a canonical link the
    Hessian is ``X^T diag(V(μ)) X / n``, so each step is iteratively reweighted least squares (IRLS).

    Newton stops when no coefficient moves by more than ``tol`` (relative to the largest), or when no entry of
    the objective's gradient exceeds ``gtol`` and a step no longer lowers the objective (the maximum is
    reached, even along nearly flat directions where some coefficients are poorly determined); a fit that does
    neither within ``max_iter`` steps, or that reaches a perfect fit (separable binary data without a penalty,
    whose likelihood keeps rising as the coefficients grow), is returned with ``converged=False``. Collinear or
    constant columns leave the unpenalised problem without a unique solution; the steps are then least-norm,
    and the fitted means are still the maximum-likelihood ones.
    """
    fam = _family(family)
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a 2-D floating-point tensor (N, p), got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not isinstance(y, Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), one response per row of x, got "
                         f"{tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__}")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    check_positive_int("max_iter", max_iter)
    fam.check(y)
    n, p = x.shape
    design = torch.cat([torch.ones(n, 1, dtype=torch.float64), x.to(torch.float64)], dim=1)
    target = y.to(torch.float64)
    penalty = torch.full((p + 1,), float(alpha), dtype=torch.float64)
    penalty[0] = 0.0
    beta = torch.zeros(p + 1, dtype=torch.float64)
    average = float(target.mean())
    if fam.link in _START and (fam.link != "log" or average > 0) and (fam.link != "logit" or 0 < average < 1):
        beta[0] = _START[fam.link](average)

    def objective(b: Tensor) -> float:
        return float(fam.nll(design @ b, target).mean() + 0.5 * (penalty * b * b).sum())

    value, converged, iterations = objective(beta), False, 0
    while iterations < max_iter and not converged:
        iterations += 1
        eta = design @ beta
        mu = fam.mean(eta)
        gradient = design.T @ (mu - target) / n + penalty * beta
        hessian = (design.T * fam.variance(mu)) @ design / n + torch.diag(penalty)
        step = torch.linalg.lstsq(hessian, gradient.unsqueeze(1), driver="gelsd").solution.squeeze(1)
        size = 1.0
        for _ in range(40):  # halve the step until the objective does not increase
            trial = objective(beta - size * step)
            if math.isfinite(trial) and trial <= value + 1e-12 * abs(value):
                break
            size /= 2
        else:
            break
        beta, previous, value = beta - size * step, value, trial
        if float(fam.deviance(target, fam.mean(design @ beta)).mean()) <= 1e-8:
            break  # a perfect (saturated) fit: where separable data drive the coefficients, to infinity
        # flat: the gradient vanishes and the objective no longer falls
        flat = float(gradient.abs().max()) <= gtol and previous - value <= 1e-12 * abs(value)
        converged = flat or float((size * step).abs().max()) <= tol * max(1.0, float(beta.abs().max()))
    return GLMFit(fam, beta[1:].clone(), float(beta[0]), float(alpha), iterations, converged, value)


def tune_glm(train: tuple[Tensor, Tensor], validation: tuple[Tensor, Tensor], family: Any = "poisson",
             alphas: Any = None, **options: Any) -> tuple[GLMFit, list[tuple[float, float]]]:
    """The ridge-penalised GLM whose strength, among ``alphas`` (default: 100 values from ``1e-5`` to ``10``,
    evenly spaced in log), gives the lowest mean negative log-likelihood on ``validation``: the same kind of
    selection an early-stopped network gets from its validation loss. Returns the chosen fit and
    ``[(alpha, validation nll), ...]``."""
    fam = _family(family)
    grid = [float(a) for a in (alphas if alphas is not None else torch.logspace(-5, 1, 100, dtype=torch.float64))]
    if not grid:
        raise ValueError("alphas must hold at least one penalty strength")
    xv, yv = validation
    path, best = [], None
    for a in grid:
        fitted = fit_glm(*train, family=fam, alpha=a, **options)
        score = float(fam.nll(fitted.eta(xv.to(torch.float64)), yv.to(torch.float64)).mean())
        path.append((a, score))
        if best is None or score < best[1]:
            best = (fitted, score)
    assert best is not None
    return best[0], path


class _Dense(nn.Module):
    """The template of Eq. 5's field: ``σ(Z β + b)`` called as ``(t, Z)``."""

    def __init__(self, dim: int, activation: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.activation = activation()

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self.activation(self.linear(z))


class GODERegressor(nn.Module):
    """Eq. 5: ``dZ/dt = σ(Z β(t) + b(t))``, ``Z(0) = X``, and ``η = g(μ) = Z(T) θ + θ_0``, with ``β(t)``, ``b(t)``
    B-spline expansions (Eq. 6) and ``y`` from an exponential family (Eq. 2) with its canonical link.

    Args:
        n_features: ``p``, the covariates in ``X`` (the state has ``p + extra`` coordinates).
        family: a name of :data:`FAMILIES` or a :class:`Family`.
        n_basis, degree, t1, knots: the basis of ``β(t)`` and ``b(t)``.
        extra: zero coordinates appended to ``X`` (room for the flow, as in chapter 4's augmentation).
        activation: ``σ``.
        solver: the ODE block's :class:`~nodelib.config.SolverConfig` or dict (default: Euler, 20 steps of ``T/20``).

    ``forward(X)`` returns ``η`` (shape ``(N,)``); :meth:`mean` returns ``μ``; :meth:`loss` the mean negative
    log-likelihood of Eq. 2 with ``a(φ) = 1``.
    """

    def __init__(self, n_features: int, family: Any = "poisson", n_basis: int = 4, degree: int = 1,
                 t1: float = 1.0, knots: str = "clamped", *, extra: int = 0,
                 activation: Callable[[], nn.Module] = nn.Tanh, solver: Any = None) -> None:
        super().__init__()

        check_positive_int("n_features", n_features)
        check_positive_int("extra", extra, minimum=0)
        if isinstance(family, str):
            if family not in FAMILIES:
                raise ValueError(f"family must be one of {tuple(FAMILIES)} or a Family, got {family!r}")
            family = FAMILIES[family]
        if not isinstance(family, Family):
            raise TypeError(f"family must be a name of FAMILIES or a Family, got {type(family).__name__}")
        self.family, self.n_features, self.extra = family, n_features, extra
        dim = n_features + extra
        template = _Dense(dim, activation)
        self.basis = BSplineBasis(n_basis, degree, t1, knots)
        self.field = TimeVaryingField(template, BasisExpansionParameters(template, self.basis, n_basis))
        solver = solver if solver is not None else {"method": "euler", "step_size": t1 / 20}
        self.block = ODEBlock(self.field, 0.0, t1, solver=solver)
        self.output = nn.Linear(dim, 1)

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.n_features or not x.is_floating_point():
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"X must be a floating-point tensor of shape (N, {self.n_features}), got {got}")

    def state(self, x: Tensor) -> Tensor:
        """``Z(T)``, the covariates carried through the flow."""
        self._check(x)
        z0 = F.pad(x, (0, self.extra)) if self.extra else x
        return self.block(z0)  # type: ignore[no-any-return]

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.state(x)).squeeze(-1)

    def mean(self, x: Tensor) -> Tensor:
        return self.family.mean(self(x))

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},) (one response per row of X), got {tuple(y.shape)}")
        self.family.check(y)
        return self.family.nll(self(x), y.to(x.dtype)).mean()


# --- chapter 8's comparison: every variant is the same classifier with another θ(t) ---------------------------------

_VARIANT = re.compile(r"^gode-m(\d+)-k(\d+)-(uniform|clamped)$")


def parse_variant(name: str, step: float = 0.05) -> dict[str, Any]:
    """The body options, interval end and solver of a variant of chapter 8's comparison:

    - ``node``: degree 0, one basis function: constant weights (a Neural ODE, Eqs. 7-8);
    - ``resnet``: degree 0, one basis function per Euler step: a weight per step (a ResNet, exactly, whose
      residual branch is scaled by the step ``h`` and whose GroupNorm parameters are shared by all blocks);
    - ``resnetN`` (e.g. ``resnet6``): the paper's ResNet, ``N`` standard residual blocks (Chen et al.'s
      pre-activation block: unscaled branches, each block its own GroupNorm; ``arch`` is ``"resnet"``);
    - ``gode-mM-kK-KNOTS``: ``M`` basis functions of degree ``K`` with ``uniform`` (the paper's) or ``clamped``
      knots;

    with optional suffixes ``-TX`` (the interval ``[0, X]``, same step) and ``-dopri5`` (adaptive steps, rtol =
    atol = 1e-3, instead of Euler). Every answer has ``arch`` (``"gode"`` or ``"resnet"``)."""
    blocks = re.match(r"^resnet(\d+)$", name)
    if blocks:
        if int(blocks.group(1)) < 1:
            raise ValueError(f"{name}: a ResNet needs at least one block")
        return {"arch": "resnet", "n_blocks": int(blocks.group(1)), "body": {}, "t1": 1.0, "solver": None}
    base, t1 = name, 1.0
    solver: dict[str, Any] = {"method": "euler", "step_size": step, "gradient": "backprop"}
    if base.endswith("-dopri5"):
        base, solver = base[:-len("-dopri5")], {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "gradient": "backprop"}
    end = re.search(r"-T(\d+(?:\.\d+)?)$", base)
    if end:
        base, t1 = base[:end.start()], float(end.group(1))
    if not t1 > 0:
        raise ValueError(f"{name}: the interval end T must be positive")
    body: dict[str, Any]
    if base == "node":
        body = {"n_basis": 1, "degree": 0}
    elif base == "resnet":
        steps = round(t1 / step)
        if abs(steps * step - t1) > 1e-9 * t1 or solver["method"] != "euler":
            raise ValueError(f"{name}: a ResNet needs Euler steps that divide [0, {t1}] (step {step})")
        body = {"n_basis": steps, "degree": 0}
    else:
        match = _VARIANT.match(base)
        if not match:
            raise ValueError(f"unknown variant {name!r}: expected node, resnet or gode-mM-kK-(uniform|clamped), "
                             "optionally followed by -TX and -dopri5")
        body = {"n_basis": int(match.group(1)), "degree": int(match.group(2)), "knots": match.group(3)}
    return {"arch": "gode", "body": body, "t1": t1, "solver": solver}


def build_variant(name: str, in_channels: int = 1, n_classes: int = 10, *, width: int = 32, stem: str = "chen",
                  step: float = 0.05) -> nn.Module:
    """The classifier of one variant of chapter 8's comparison (not seeded: seed before calling)."""
    from .classification import build_classifier

    spec = parse_variant(name, step)
    if spec["arch"] == "resnet":
        resnet: nn.Module = build_classifier("resnet", in_channels, n_classes, width=width, stem_kind=stem,
                                             n_blocks=spec["n_blocks"])
        return resnet
    model: nn.Module = build_classifier("gode", in_channels, n_classes, width=width, stem_kind=stem,
                                        body_options=spec["body"], solver=spec["solver"], t1=spec["t1"])
    return model


def kernel_path(model: nn.Module, step: float = 0.05) -> list[float]:
    """The first convt's kernel entry ``θ[0, 0, 1, 1]`` at every Euler time of a variant's interval: how smoothly
    the weights vary with depth (compare it at initialisation and after training). For a ``resnetN`` variant:
    the same entry of each block's first convolution (the paper's Fig. 2 plots it against the block)."""
    from .layers import ConvResBlock

    body: Any = model.body
    blocks: list[Any] = [b for b in body if isinstance(b, ConvResBlock)]
    if blocks:
        return [float(b.conv1.weight[0, 0, 1, 1].detach()) for b in blocks]
    block: Any = model.body[0]  # type: ignore[index]
    field: GODEField = block.field
    grid = torch.arange(0, field.basis.t1 + 1e-9, step, dtype=torch.float64)
    first: BSplineConv = field.convs[0]  # type: ignore[assignment]
    with torch.no_grad():
        return [float(first.weight(t.to(torch.get_default_dtype()))[0, 0, 1, 1]) for t in grid]


def roughness(path: list[float]) -> float:
    """The mean absolute step-to-step change of a :func:`kernel_path`."""
    if len(path) < 2:
        return 0.0
    return sum(abs(b - a) for a, b in zip(path, path[1:])) / (len(path) - 1)


def _gode_body(width: int, *, dims: int, solver: SolverConfig, t1: float, n_basis: int = 8, degree: int = 1,
               knots: str = "clamped", n_layers: int = 2, init: str = "independent", **_: Any
               ) -> tuple[nn.Module, int, Any]:
    block = ODEBlock(GODEField(width, n_basis, degree, t1, knots, n_layers=n_layers, dims=dims, init=init), 0.0,
                     float(t1), solver=solver)
    return nn.Sequential(block), width, block.counter


register_body(BodySpec("gode", "Neural-GODE: (GN-ReLU-convt) x 2 with B-spline kernels, Euler step 0.05, backprop",
                       _gode_body, SolverConfig(method="euler", step_size=0.05, gradient="backprop"),
                       options=("n_basis", "degree", "knots", "n_layers", "init")))
