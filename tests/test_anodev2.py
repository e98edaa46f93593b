"""ANODEV2's evolution operator (chapter 7, in preparation): the exact RDA solve by FFT and Eq. 13's scheme."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import expm

from nodelib.anodev2 import rda_linear, rda_nonlinear

F64 = torch.float64


def _dense_operator(n: int, second: bool) -> np.ndarray:
    """The periodic spectral first (or second) derivative on n unit-spaced points as a dense real matrix, built
    from explicit DFT matrices (no FFT library): F⁻¹ diag(i k) F, or F⁻¹ diag(-k²) F."""
    j = np.arange(n)
    dft = np.exp(-2j * np.pi * np.outer(j, j) / n)
    k = 2 * np.pi * np.where(j <= (n - 1) // 2, j, j - n) / n
    if n % 2 == 0:
        k[n // 2] = -np.pi  # the Nyquist wavenumber: π² in the second derivative, 0 in the first
    symbol = -k**2 if second else 1j * np.where((n % 2 == 0) & (j == n // 2), 0.0, k)
    op = np.linalg.inv(dft) @ np.diag(symbol) @ dft
    assert np.abs(op.imag).max() < 1e-10
    return op.real


def _reference(w: np.ndarray, dt: float, tau: float, v: tuple[float, float], rho: float) -> np.ndarray:
    """exp(dt L) w with L = τ(D2 ⊗ I + I ⊗ D2) + v_row D1 ⊗ I + v_col I ⊗ D1 + ρ I, by scipy's matrix exponential."""
    h, wd = w.shape
    eye_h, eye_w = np.eye(h), np.eye(wd)
    gen = (tau * (np.kron(_dense_operator(h, True), eye_w) + np.kron(eye_h, _dense_operator(wd, True)))
           + v[0] * np.kron(_dense_operator(h, False), eye_w) + v[1] * np.kron(eye_h, _dense_operator(wd, False))
           + rho * np.eye(h * wd))
    return (expm(dt * gen) @ w.reshape(-1)).reshape(h, wd)


@pytest.mark.parametrize("shape", [(5, 7), (6, 4), (4, 5), (3, 3)])
def test_matches_the_matrix_exponential_of_the_discretised_operator(shape):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape)
    for tau, v, rho, dt in [(0.3, (0.0, 0.0), 0.0, 0.7), (0.0, (0.4, -1.3), 0.0, 0.5), (0.2, (0.7, 0.25), -0.4, 1.1)]:
        ours = rda_linear(torch.tensor(w, dtype=F64), dt, tau, v, rho)
        assert ours.dtype == F64 and ours.shape == shape
        assert np.allclose(ours.numpy(), _reference(w, dt, tau, v, rho), atol=1e-10)


@pytest.mark.parametrize("shape", [(5, 5), (6, 8), (7, 4)])
def test_semigroup(shape):
    w = torch.randn(2, 3, *shape, dtype=F64)
    args = (0.15, (0.6, -0.35), 0.2)
    once = rda_linear(w, 0.8, *args)
    twice = rda_linear(rda_linear(w, 0.3, *args), 0.5, *args)
    assert torch.allclose(once, twice, atol=1e-12)
    assert torch.allclose(rda_linear(rda_linear(w, 0.4, *args), -0.4, *args), w, atol=1e-10)  # back again


def test_whole_pixel_advection_is_a_circular_shift_in_the_right_direction():
    w = torch.randn(7, 5, dtype=F64)
    # ∂w/∂t = v·∇w moves the pattern against v: after time 1, w(i, j) = w0(i + v_row, j + v_col)
    assert torch.allclose(rda_linear(w, 1.0, 0.0, (1.0, 0.0), 0.0), torch.roll(w, -1, dims=0), atol=1e-12)
    assert torch.allclose(rda_linear(w, 1.0, 0.0, (0.0, -2.0), 0.0), torch.roll(w, 2, dims=1), atol=1e-12)
    assert torch.allclose(rda_linear(w, 0.5, 0.0, (4.0, 2.0), 0.0), torch.roll(w, (-2, -1), dims=(0, 1)), atol=1e-12)
    # even sizes: exact for a field without a Nyquist component; the Nyquist mode itself does not move
    even = torch.randn(6, 8, dtype=F64)
    spectrum = torch.fft.fft2(even)
    spectrum[3, :] = 0
    spectrum[:, 4] = 0
    smooth = torch.fft.ifft2(spectrum).real
    assert torch.allclose(rda_linear(smooth, 1.0, 0.0, (1.0, 1.0), 0.0), torch.roll(smooth, (-1, -1), dims=(0, 1)),
                          atol=1e-12)
    nyquist = torch.tensor([(-1.0) ** i for i in range(6)], dtype=F64)[:, None].expand(6, 8)
    assert torch.allclose(rda_linear(nyquist, 0.3, 0.0, (1.0, 0.0), 0.0), nyquist, atol=1e-12)


@pytest.mark.parametrize("shape", [(5, 7), (6, 6), (4, 9)])
def test_real_input_gives_real_output_and_reaction_diffusion_act_as_expected(shape):
    w = torch.randn(*shape, dtype=torch.float32)
    out = rda_linear(w, 0.5, 0.1, (0.3, 0.2), 0.0)
    assert out.dtype == torch.float32 and not out.is_complex() and torch.isfinite(out).all()
    w64 = w.double()
    assert torch.allclose(rda_linear(w64, 0.7, 0.0, (0.0, 0.0), 0.5), math.exp(0.35) * w64, atol=1e-12)
    diffused = rda_linear(w64, 2.0, 0.5, (0.0, 0.0), 0.0)
    assert math.isclose(float(diffused.mean()), float(w64.mean()), abs_tol=1e-12)  # diffusion keeps the mean
    assert float(diffused.std()) < float(w64.std())  # and smooths


def test_gradients_flow_to_the_field_and_to_tensor_coefficients():
    w = torch.randn(3, 5, 5, dtype=F64, requires_grad=True)
    tau = torch.tensor([0.1, 0.2, 0.3], dtype=F64, requires_grad=True)  # one coefficient per kernel
    rho = torch.tensor(0.2, dtype=F64, requires_grad=True)
    out = rda_linear(w, 0.5, tau, (0.3, 0.1), rho)
    for k in range(3):  # a per-kernel coefficient acts on its own kernel only
        assert torch.allclose(out[k], rda_linear(w[k].detach(), 0.5, float(tau[k].detach()), (0.3, 0.1), 0.2), atol=1e-12)
    out.pow(2).sum().backward()
    assert w.grad is not None and tau.grad is not None and rho.grad is not None
    assert torch.autograd.gradcheck(lambda a, b: rda_linear(a, 0.4, b, (0.2, -0.5), 0.1),
                                    (torch.randn(4, 5, dtype=F64, requires_grad=True),
                                     torch.tensor(0.3, dtype=F64, requires_grad=True)))


def test_eq13_is_not_a_consistent_discretisation_of_eq8():
    """Pure reaction ρ = 1, w(0) = 1, σ = tanh: Eq. 8 (dw/dt = tanh(w)) gives asinh(e sinh 1) = 1.878 at t = 1;
    Eq. 13 gives 0.991, 0.704, 0.538, 0.184 for 1, 5, 10, 100 steps and tends to 0, not to Eq. 8's value."""
    exact = math.asinh(math.e * math.sinh(1.0))
    assert round(exact, 3) == 1.878
    w = torch.ones(4, 4, dtype=F64)
    got = [float(rda_nonlinear(w, 1.0, 0.0, (0.0, 0.0), 1.0, n)[0, 0]) for n in (1, 5, 10, 100)]
    assert [round(g, 3) for g in got] == [0.991, 0.704, 0.538, 0.184]


@pytest.mark.parametrize("args, message", [
    ((torch.arange(9).reshape(3, 3), 0.1, 0.1, (0.0, 0.0), 0.0), "real floating-point tensor"),
    ((torch.zeros(5), 0.1, 0.1, (0.0, 0.0), 0.0), r"shape \(..., H, W\)"),
    ((torch.zeros(3, 3), 0.1, -0.1, (0.0, 0.0), 0.0), "tau must be a finite number >= 0"),
    ((torch.zeros(3, 3), float("nan"), 0.1, (0.0, 0.0), 0.0), "dt must be a finite number"),
    ((torch.zeros(3, 3), 0.1, 0.1, (1.0,), 0.0), r"v must be a pair \(v_row, v_col\)"),
    ((torch.zeros(3, 3), 0.1, torch.tensor([0.1, -1.0]), (0.0, 0.0), 0.0), "tau must be finite and >= 0"),
])
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        rda_linear(*args)
    with pytest.raises(ValueError, match="n_steps"):
        rda_nonlinear(torch.zeros(3, 3), 1.0, 0.1, (0.0, 0.0), 0.0, 0)
