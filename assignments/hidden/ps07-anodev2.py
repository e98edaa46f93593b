"""Hidden tests of problem set 7: exact FFT solves of diffusion and advection (nodelib.anodev2 is switched off)."""
import math

import torch
from spec import assert_close, forbid, hidden

forbid("q1_heat_fft", "nodelib.anodev2")
forbid("q2_advection", "nodelib.anodev2")


def wavenumbers(n, dtype):
    return 2 * math.pi * torch.fft.fftfreq(n, dtype=dtype)


def diffuse_reference(w, tau, t):
    k = wavenumbers(w.shape[-1], w.dtype)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    return torch.fft.ifft2(torch.fft.fft2(w) * torch.exp(-tau * k2 * t)).real


def advect_reference(w, v, t):
    k = wavenumbers(w.shape[-1], w.dtype)
    phase = t * (v[0] * k[:, None] + v[1] * k[None, :])
    return torch.fft.ifft2(torch.fft.fft2(w) * torch.polar(torch.ones_like(phase), phase)).real


@hidden("q1_heat_fft", 1)
def test_odd_grid_batch(student):
    """A batch of three 7 x 7 kernels (an odd grid), and the decay rate of one mode (k = 2 pi m / n)."""
    torch.manual_seed(0)
    w = torch.randn(3, 7, 7)
    assert_close(student("diffuse", w, 0.3, 0.7), diffuse_reference(w, 0.3, 0.7), atol=1e-12)
    i = torch.arange(7, dtype=torch.float64)
    mode = torch.cos(2 * math.pi * 3 * i / 7)[None, :].expand(7, 7)  # m = 3 along the columns only
    factor = math.exp(-0.3 * 0.7 * (2 * math.pi * 3 / 7) ** 2)
    assert_close(student("diffuse", mode, 0.3, 0.7), factor * mode, atol=1e-12,
                 what="a single Fourier mode (it should shrink by exp(-tau t |k|^2), k = 2 pi m / n)")


@hidden("q1_heat_fft", 1)
def test_even_grid_batch(student):
    """Two 6 x 6 kernels, a longer time."""
    torch.manual_seed(1)
    w = torch.randn(2, 6, 6)
    assert_close(student("diffuse", w, 0.1, 2.5), diffuse_reference(w, 0.1, 2.5), atol=1e-12)


@hidden("q1_heat_fft", 1)
def test_nothing_happens_without_time_or_diffusion(student):
    """t = 0 or tau = 0 leaves the kernel as it is; tau = 0.4, t = 1 does not."""
    torch.manual_seed(2)
    w = torch.randn(5, 5)
    assert_close(student("diffuse", w, 0.4, 0.0), w, atol=1e-12, what="with t = 0 the result")
    assert_close(student("diffuse", w, 0.0, 2.0), w, atol=1e-12, what="with tau = 0 the result")
    assert_close(student("diffuse", w, 0.4, 1.0), diffuse_reference(w, 0.4, 1.0), atol=1e-12)


@hidden("q2_advection", 1)
def test_fractional_shift(student):
    """A shift by a fraction of a cell on an odd grid (no Nyquist mode)."""
    torch.manual_seed(0)
    w = torch.randn(2, 7, 7)
    assert_close(student("advect", w, (0.4, -1.3), 0.8), advect_reference(w, (0.4, -1.3), 0.8), atol=1e-12)


@hidden("q2_advection", 1)
def test_whole_cells_along_rows(student):
    """v = (1, 0) for t = 3 moves the kernel up by three rows, w(i, j) <- w(i + 3, j); v = (0, -2) for t = 1
    moves it right by two columns, w(i, j) <- w(i, j - 2)."""
    torch.manual_seed(3)
    w = torch.randn(5, 5)
    assert_close(student("advect", w, (1.0, 0.0), 3.0), torch.roll(w, shifts=-3, dims=-2), atol=1e-12,
                 what="the kernel moved by v = (1, 0), t = 3 (up three rows)")
    assert_close(student("advect", w, (0.0, -2.0), 1.0), torch.roll(w, shifts=2, dims=-1), atol=1e-12,
                 what="the kernel moved by v = (0, -2), t = 1 (right two columns; check the sign of the phase)")


@hidden("q2_advection", 1)
def test_real_and_energy_preserving(student):
    """A real tensor of the input's shape, with the same norm (advection only moves the kernel)."""
    torch.manual_seed(4)
    w = torch.randn(4, 9, 9)
    out = student("advect", w, (0.25, 0.6), 1.7)
    assert_close(out, advect_reference(w, (0.25, 0.6), 1.7), atol=1e-12)
    assert abs(float(out.norm()) - float(w.norm())) < 1e-10, "the norm changed"
