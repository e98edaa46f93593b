"""ANODEV2 (chapter 7, in preparation): weights that evolve by a reaction-diffusion-advection (RDA) equation.

Zhang et al. (2019) let a convolution kernel ``w`` evolve with the activations; their evolution operator is the
RDA equation (Eq. 8 = Eq. 10) on the two spatial axes of the kernel,

    ∂w/∂t = σ(τ Δw + v·∇w + ρ w),

whose linear part (σ = identity) they solve exactly by FFT (Eq. 11-12) and whose nonlinear version they
approximate by applying σ after each linear solve (Eq. 13). This module holds those two operators:

- :func:`rda_linear`: the exact solution after time ``dt`` of ``∂w/∂t = τ Δw + v·∇w + ρ w`` on a periodic grid
  of unit spacing (one pixel), with wavenumbers ``2π fftfreq(n)``;
- :func:`rda_nonlinear`: Eq. 13, ``n_steps`` linear solves of ``t / n_steps`` each followed by σ (tanh).

Eq. 13 is *not* a consistent discretisation of Eq. 8: for pure reaction (ρ = 1, w(0) = 1, σ = tanh) Eq. 8 gives
``w(1) = asinh(e sinh 1) = 1.878`` while Eq. 13 gives 0.991, 0.704, 0.538, 0.184 with 1, 5, 10, 100 steps
(tests), because σ is applied to the state after every step instead of to the rate.

The Nyquist mode of an even-sized axis is real; a real field has no derivative there on the grid, so advection
leaves it unchanged (its first-derivative wavenumber is 0) while diffusion damps it with ``k² = π²``. This keeps
the operator real and its solutions a semigroup; a shift by a whole pixel is therefore an exact circular shift on
odd-sized axes, and on even-sized axes for fields without a Nyquist component.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import torch
from torch import Tensor

from ._impl.checks import check_positive_int

Coefficient = Union[float, Tensor]


def _wavenumbers(n: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(k, k_first)``: the angular wavenumbers ``2π fftfreq(n)`` of a unit-spaced periodic axis, and the same with
    the Nyquist entry set to 0 (the first derivative of the real Nyquist mode vanishes on the grid)."""
    k = 2 * math.pi * torch.fft.fftfreq(n, d=1.0, dtype=dtype, device=device)
    k_first = k.clone()
    if n % 2 == 0:
        k_first[n // 2] = 0.0
    return k, k_first


def _check_field(w: Tensor) -> None:
    if not isinstance(w, Tensor) or not w.is_floating_point() or w.dim() < 2:
        raise ValueError("w must be a real floating-point tensor of shape (..., H, W) (the last two axes are the "
                         f"kernel's spatial axes); got {type(w).__name__} "
                         f"{tuple(w.shape) if isinstance(w, Tensor) else ''} {getattr(w, 'dtype', '')}")


def _check_scalar(name: str, value: Coefficient, non_negative: bool = False) -> None:
    if isinstance(value, Tensor):
        values = value.detach()
        if not bool(torch.isfinite(values).all()) or (non_negative and bool((values < 0).any())):
            raise ValueError(f"{name} must be finite{' and >= 0' if non_negative else ''}, got {value}")
        return
    if not isinstance(value, (int, float)) or not math.isfinite(value) or (non_negative and value < 0):
        raise ValueError(f"{name} must be a finite number{' >= 0' if non_negative else ''}, got {value!r}")


def rda_linear(w: Tensor, dt: float, tau: Coefficient, v: Sequence[Coefficient], rho: Coefficient) -> Tensor:
    """The exact solution after time ``dt`` of ``∂w/∂t = τ Δw + v·∇w + ρ w`` on the last two axes of ``w``.

    Periodic boundaries, unit grid spacing, Eq. 12 of Zhang et al. (2019): ``ŵ ← exp(dt(-τ|k|² + i v·k + ρ)) ŵ``.

    Args:
        w: a real tensor of shape ``(..., H, W)``.
        dt: the time step (any finite number; negative steps run backwards, which diffusion makes ill-posed).
        tau: diffusion coefficient τ >= 0 (a number, or a tensor broadcastable to ``w.shape[:-2]``).
        v: ``(v_row, v_col)``, the advection velocity along the last two axes: ``v_row = 1, dt = 1`` moves
            the field up by one row, ``w(i, j) ← w(i + 1, j)``.
        rho: reaction coefficient ρ: ``w ← e^{ρ dt} w`` for a constant field.

    Returns a real tensor of the shape and dtype of ``w``; gradients flow to ``w`` and to tensor coefficients.
    """
    _check_field(w)
    _check_scalar("dt", dt)
    _check_scalar("tau", tau, non_negative=True)
    _check_scalar("rho", rho)
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise ValueError(f"v must be a pair (v_row, v_col) of velocities along the last two axes, got {v!r}")
    for name, value in zip(("v_row", "v_col"), v):
        _check_scalar(name, value)
    rows, cols = w.shape[-2], w.shape[-1]
    kr, kr1 = _wavenumbers(rows, w.dtype, w.device)
    kc, kc1 = _wavenumbers(cols, w.dtype, w.device)
    k2 = kr[:, None] ** 2 + kc[None, :] ** 2

    def per_field(c: Coefficient) -> Union[float, Tensor]:  # a tensor coefficient broadcasts over the batch axes
        return c[..., None, None] if isinstance(c, Tensor) and c.dim() else c

    tau_, rho_, vr, vc = per_field(tau), per_field(rho), per_field(v[0]), per_field(v[1])
    real = dt * (rho_ - tau_ * k2)
    imaginary = dt * (vr * kr1[:, None] + vc * kc1[None, :])
    factor = torch.polar(torch.exp(torch.as_tensor(real, dtype=w.dtype, device=w.device)),
                         torch.as_tensor(imaginary, dtype=w.dtype, device=w.device))
    return torch.fft.ifft2(torch.fft.fft2(w) * factor).real


def rda_nonlinear(w: Tensor, t: float, tau: Coefficient, v: Sequence[Coefficient], rho: Coefficient, n_steps: int,
                  activation: Callable[[Tensor], Tensor] = torch.tanh) -> Tensor:
    """Eq. 13 of Zhang et al. (2019): ``n_steps`` times, ``w ← σ(rda_linear(w, t / n_steps, ...))``.

    This is the scheme the paper uses for the nonlinear Eq. 8, not a consistent discretisation of it (see the
    module docstring).
    """
    check_positive_int("n_steps", n_steps)
    for _ in range(n_steps):
        w = activation(rda_linear(w, t / n_steps, tau, v, rho))
    return w
