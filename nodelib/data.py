"""Data for learning dynamics (chapter 3): spirals, irregular sampling, noise, splits in time.

All generators take a ``torch.Generator`` (or a seed) so that data sets are reproducible, and return float64
tensors unless told otherwise; times come first, as in :func:`nodelib.odeint`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor

from .solvers import odeint

#: The spiral of Capell et al. (2023), section 4.3.2: z' = A z turns clockwise in the plane, decaying slowly.
A_CAPELL = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
#: The spiral of Facci & Zurlo (2022), Eq. 28: counter-clockwise, at half the angular speed.
A_FACCI = torch.tensor([[-0.1, -1.0], [1.0, -0.1]], dtype=torch.float64)

Seed = Union[int, torch.Generator, None]


def _generator(seed: Seed) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    g.manual_seed(0 if seed is None else int(seed))
    return g


def _check_matrix(A: Tensor) -> Tensor:
    A = torch.as_tensor(A, dtype=torch.float64)
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix, got shape {tuple(A.shape)}")
    return A


def linear_trajectory(A: Tensor, z0: Tensor, t: Tensor) -> Tensor:
    """The exact solution ``z(t) = exp(t A) z0`` of ``z' = A z`` at the times ``t`` (shape ``(len(t), *z0.shape)``)."""
    A = _check_matrix(A).to(z0.dtype)
    if z0.shape[-1] != A.shape[0]:
        raise ValueError(f"z0's last dimension {z0.shape[-1]} does not match A's size {A.shape[0]}")
    t = torch.as_tensor(t, dtype=z0.dtype)
    if t.dim() != 1:
        raise ValueError(f"t must be 1-D, got shape {tuple(t.shape)}")
    expm = torch.linalg.matrix_exp(t[:, None, None] * A)  # (T, d, d)
    return torch.einsum("tij,...j->t...i", expm, z0)


def cubic_trajectory(A: Tensor, z0: Tensor, t: Tensor) -> Tensor:
    """A nonlinear spiral: ``z' = A (z ** 3)`` elementwise cube (torchdiffeq's demo system), solved accurately."""
    A = _check_matrix(A).to(z0.dtype)
    return odeint(lambda s, z: (z**3) @ A.T, z0, torch.as_tensor(t, dtype=z0.dtype), rtol=1e-10, atol=1e-10)


def irregular_times(n: int, t_max: float, seed: Seed = None, *, t_min: float = 0.0, include_start: bool = True) -> Tensor:
    """``n`` sorted, distinct times drawn uniformly in ``[t_min, t_max]`` (the first is ``t_min`` if ``include_start``)."""
    if n < 2:
        raise ValueError(f"need at least two times, got n={n}")
    if not t_max > t_min:
        raise ValueError(f"need t_max > t_min, got t_min={t_min}, t_max={t_max}")
    g = _generator(seed)
    u = torch.rand(n - 1 if include_start else n, generator=g, dtype=torch.float64)
    t = t_min + (t_max - t_min) * u
    if include_start:
        t = torch.cat([torch.tensor([t_min], dtype=torch.float64), t])
    t, _ = torch.sort(t)
    if (t[1:] <= t[:-1]).any():  # a tie has probability zero but would break the solvers: redraw
        return irregular_times(n, t_max, g, t_min=t_min, include_start=include_start)
    return t


def add_noise(z: Tensor, std: float, seed: Seed = None) -> Tensor:
    """``z`` plus independent Gaussian noise of standard deviation ``std``."""
    if std < 0:
        raise ValueError(f"noise std must be non-negative, got {std}")
    return z + std * torch.randn(z.shape, generator=_generator(seed), dtype=z.dtype)


def split_in_time(t: Tensor, z: Tensor, fraction: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split a trajectory at the time ``t[0] + fraction * (t[-1] - t[0])``: (t_train, z_train, t_test, z_test).

    The test part lies entirely after the training part, so a model is scored on *extrapolation*.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(t) != len(z):
        raise ValueError(f"t has {len(t)} times but z has {len(z)} states")
    cut = t[0] + fraction * (t[-1] - t[0])
    k = int(torch.searchsorted(t, cut, right=True))
    if k < 2 or k >= len(t):
        raise ValueError("the split leaves fewer than two training points or no test point")
    return t[:k], z[:k], t[k:], z[k:]


def windows(t: Tensor, z: Tensor, length: int, batch: int, seed: Seed = None) -> tuple[Tensor, Tensor, Tensor]:
    """A batch of random windows of ``length`` consecutive samples, for training on short pieces of a trajectory.

    Returns the start states ``(batch, d)``, the times relative to each start ``(length,)`` (shared: the samples
    must be evenly spaced) and the targets ``(length, batch, d)``.
    """
    if length < 2 or length > len(t):
        raise ValueError(f"window length must be in [2, {len(t)}], got {length}")
    starts = torch.randint(0, len(t) - length + 1, (batch,), generator=_generator(seed))
    idx = starts[None, :] + torch.arange(length)[:, None]
    return z[starts], t[:length] - t[0], z[idx]


@dataclass
class SpiralSet:
    """Noisy observations of many 2-D spirals, some turning clockwise and some counter-clockwise.

    Attributes:
        t: the shared, irregular observation times ``(T,)``.
        clean: the true states ``(T, n, 2)``.
        noisy: the observations ``(T, n, 2)``.
        clockwise: which spirals turn clockwise ``(n,)``.
        t_dense, dense: the true trajectories on a fine regular grid covering ``[0, t_dense[-1]]``.
    """

    t: Tensor
    clean: Tensor
    noisy: Tensor
    clockwise: Tensor
    t_dense: Tensor
    dense: Tensor


def bidirectional_spirals(
    n_spirals: int,
    n_obs: int,
    t_max: float,
    noise_std: float,
    seed: Seed = None,
    *,
    t_dense_max: Optional[float] = None,
    decay: float = 0.1,
    speed: float = 1.0,
) -> SpiralSet:
    """Spirals ``z' = A z`` with ``A = [[-decay, ±speed], [∓speed, -decay]]``, half of each sense of rotation.

    Each spiral starts at a random radius in [1, 2] and a random angle; all are observed at the same ``n_obs``
    irregular times in ``[0, t_max]`` with Gaussian noise, the setting of the latent ODE experiment of
    Chen et al. (2018) as described by Facci & Zurlo (2022, section 4.1.1).
    """
    if n_spirals < 1 or n_obs < 2:
        raise ValueError(f"need n_spirals >= 1 and n_obs >= 2, got {n_spirals} and {n_obs}")
    g = _generator(seed)
    clockwise = torch.arange(n_spirals) % 2 == 0
    radius = 1.0 + torch.rand(n_spirals, generator=g, dtype=torch.float64)
    angle = 2 * torch.pi * torch.rand(n_spirals, generator=g, dtype=torch.float64)
    z0 = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)
    t = irregular_times(n_obs, t_max, g)
    t_dense = torch.linspace(0.0, t_dense_max or t_max, 400, dtype=torch.float64)
    A_cw = torch.tensor([[-decay, speed], [-speed, -decay]], dtype=torch.float64)
    A_ccw = torch.tensor([[-decay, -speed], [speed, -decay]], dtype=torch.float64)

    def solve(times: Tensor) -> Tensor:
        return torch.where(clockwise[None, :, None], linear_trajectory(A_cw, z0, times), linear_trajectory(A_ccw, z0, times))

    clean = solve(t)
    return SpiralSet(t=t, clean=clean, noisy=add_noise(clean, noise_std, g), clockwise=clockwise, t_dense=t_dense, dense=solve(t_dense))


def linear_interpolation(t_known: Tensor, z_known: Tensor, t_query: Tensor) -> Tensor:
    """Piecewise-linear interpolation of ``z_known`` (time first) at ``t_query``, held constant outside the range."""
    t_query = torch.as_tensor(t_query, dtype=t_known.dtype)
    k = torch.searchsorted(t_known, t_query).clamp(1, len(t_known) - 1)
    t0, t1 = t_known[k - 1], t_known[k]
    w = ((t_query - t0) / (t1 - t0)).clamp(0.0, 1.0)
    shape = (-1,) + (1,) * (z_known.dim() - 1)
    return z_known[k - 1] + w.view(shape) * (z_known[k] - z_known[k - 1])


def flip_1d(n: int, seed: Seed = None) -> tuple[Tensor, Tensor]:
    """Points x uniform in [-1, 1] of shape ``(n, 1)`` and targets g(x) = -x: the map no 1-D ODE flow can represent."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    x = 2 * torch.rand(n, 1, generator=_generator(seed), dtype=torch.float64) - 1
    return x, -x


def concentric_spheres(n: int, dim: int = 2, r_inner: float = 0.5, r_annulus: tuple[float, float] = (1.0, 1.5),
                       seed: Seed = None) -> tuple[Tensor, Tensor]:
    """Dupont et al.'s data: half the points in the ball |x| < r_inner (label 1), half in the shell
    r_annulus[0] < |x| < r_annulus[1] (label 0), in any dimension. Returns x ``(n, dim)`` and labels ``(n,)``."""
    if n < 2 or dim < 1:
        raise ValueError(f"need n >= 2 and dim >= 1, got n={n}, dim={dim}")
    if not 0 < r_inner < r_annulus[0] < r_annulus[1]:
        raise ValueError(f"need 0 < r_inner < r_annulus[0] < r_annulus[1], got {r_inner}, {r_annulus}")
    g = _generator(seed)
    direction = torch.randn(n, dim, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    inner = torch.arange(n) < n // 2
    radius = torch.where(inner, r_inner * u, r_annulus[0] + (r_annulus[1] - r_annulus[0]) * u)
    perm = torch.randperm(n, generator=g)
    return (direction * radius[:, None])[perm], inner.to(torch.float64)[perm]
