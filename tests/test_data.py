"""nodelib.data (chapter 3): the generators produce what they say."""
from __future__ import annotations

import pytest
import torch

from nodelib import odeint
from nodelib.data import (
    A_CAPELL,
    A_FACCI,
    add_noise,
    bidirectional_spirals,
    cubic_trajectory,
    irregular_times,
    linear_interpolation,
    linear_trajectory,
    split_in_time,
    windows,
)

F64 = torch.float64


def test_linear_trajectory_is_the_ode_solution():
    t = torch.linspace(0, 5, 11, dtype=F64)
    z0 = torch.tensor([[2.0, 0.0], [0.5, -1.0]], dtype=F64)
    exact = linear_trajectory(A_CAPELL, z0, t)
    numeric = odeint(lambda s, z: z @ A_CAPELL.T, z0, t, rtol=1e-11, atol=1e-11)
    assert exact.shape == (11, 2, 2)
    assert (exact - numeric).abs().max() < 1e-8


def test_senses_of_rotation():
    z = linear_trajectory(A_CAPELL, torch.tensor([2.0, 0.0], dtype=F64), torch.tensor([0.0, 0.1], dtype=F64))
    assert z[1, 1] < 0  # clockwise: from (2, 0) it moves down
    z = linear_trajectory(A_FACCI, torch.tensor([2.0, 0.0], dtype=F64), torch.tensor([0.0, 0.1], dtype=F64))
    assert z[1, 1] > 0


def test_cubic_trajectory_stays_bounded_and_turns():
    z = cubic_trajectory(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=F64), torch.tensor([2.0, 0.0], dtype=F64),
                         torch.linspace(0, 5, 50, dtype=F64))
    assert torch.isfinite(z).all() and z.norm(dim=-1).max() < 2.5  # the sum of fourth powers decays, not the norm
    assert (z[:, 0] < 0).any() and (z[:, 1] > 0).any()  # it goes round


def test_irregular_times():
    t = irregular_times(50, 10.0, seed=3)
    assert t[0] == 0 and (t[1:] > t[:-1]).all() and t[-1] <= 10
    assert torch.equal(t, irregular_times(50, 10.0, seed=3))
    gaps = torch.diff(t)
    assert gaps.max() / gaps.min() > 5  # really irregular
    with pytest.raises(ValueError, match="at least two"):
        irregular_times(1, 1.0)
    with pytest.raises(ValueError, match="t_max > t_min"):
        irregular_times(5, 0.0)


def test_add_noise_and_split():
    z = torch.zeros(20000, 2, dtype=F64)
    assert add_noise(z, 0.1, seed=1).std().item() == pytest.approx(0.1, rel=0.03)
    with pytest.raises(ValueError, match="non-negative"):
        add_noise(z, -1.0)
    t = torch.linspace(0, 1, 11, dtype=F64)
    tr, ztr, te, zte = split_in_time(t, torch.arange(11.0)[:, None], 0.7)
    assert tr[-1] < te[0] and len(tr) + len(te) == 11 and len(ztr) == len(tr)
    with pytest.raises(ValueError, match="fraction"):
        split_in_time(t, t, 1.5)


def test_windows():
    t = torch.linspace(0, 1, 20, dtype=F64)
    z = torch.arange(40.0, dtype=F64).view(20, 2)
    z0, tw, target = windows(t, z, 5, 7, seed=0)
    assert z0.shape == (7, 2) and tw.shape == (5,) and target.shape == (5, 7, 2)
    assert torch.equal(target[0], z0) and tw[0] == 0
    with pytest.raises(ValueError, match="window length"):
        windows(t, z, 30, 2)


def test_bidirectional_spirals():
    data = bidirectional_spirals(10, 30, 6.0, 0.1, seed=0, t_dense_max=9.0)
    assert data.noisy.shape == data.clean.shape == (30, 10, 2)
    assert data.dense.shape == (400, 10, 2) and data.t_dense[-1] == 9.0
    # the sense of rotation: sign of the cross product z(t) x z(t + dt)
    cross = data.dense[0, :, 0] * data.dense[1, :, 1] - data.dense[0, :, 1] * data.dense[1, :, 0]
    assert torch.equal(cross < 0, data.clockwise)
    assert data.clockwise.sum() == 5
    residual = (data.noisy - data.clean).std().item()
    assert 0.07 < residual < 0.13


def test_linear_interpolation_is_exact_on_lines():
    t = torch.tensor([0.0, 1.0, 3.0], dtype=F64)
    z = torch.stack([2 * t + 1, -t], dim=-1)
    q = torch.tensor([0.5, 2.0, 2.5], dtype=F64)
    assert torch.allclose(linear_interpolation(t, z, q), torch.stack([2 * q + 1, -q], dim=-1))
