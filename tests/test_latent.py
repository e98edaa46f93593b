"""nodelib.latent (chapter 3): shapes, the ELBO, and the promise that a trained latent ODE beats linear
interpolation of the noisy observations on held-out points of unseen spirals."""
from __future__ import annotations

import math

import pytest
import torch

from nodelib import seed_everything
from nodelib.data import bidirectional_spirals, linear_interpolation
from nodelib.latent import LatentODE, negative_elbo, train_latent_ode


def test_shapes_and_errors():
    model = LatentODE(obs_dim=2, latent_dim=3)
    x, t = torch.randn(7, 5, 2), torch.linspace(0, 1, 7)
    pred, mean, logvar = model(x, t, t_out=torch.linspace(0, 2, 9))
    assert pred.shape == (9, 5, 2) and mean.shape == logvar.shape == (5, 3)
    with pytest.raises(ValueError, match=r"shape \(T, batch, 2\)"):
        model(torch.randn(7, 2), t)
    with pytest.raises(ValueError, match="one time per observation"):
        model(x, torch.linspace(0, 1, 6))
    with pytest.raises(ValueError, match="latent_dim"):
        LatentODE(latent_dim=0)


def test_negative_elbo_by_hand():
    pred, x = torch.zeros(2, 1, 1), torch.ones(2, 1, 1)
    mean, logvar = torch.zeros(1, 1), torch.zeros(1, 1)
    expected = 2 * 0.5 * (1 / 0.25 + 2 * math.log(0.5) + math.log(2 * math.pi))  # KL of N(0, 1) from itself is 0
    assert negative_elbo(pred, x, mean, logvar, 0.5).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="noise_std"):
        negative_elbo(pred, x, mean, logvar, 0.0)


def test_trained_latent_ode_beats_linear_interpolation_on_held_out_points():
    seed_everything(0)
    data = bidirectional_spirals(300, 60, 6.0, 0.1, seed=3)
    t, noisy, clean = data.t.float(), data.noisy.float(), data.clean.float()
    observed = torch.arange(60) % 2 == 0
    model = LatentODE(latent_dim=4, hidden=32, rnn_hidden=32, method="rk4", step_size=0.2)
    train_latent_ode(model, noisy[observed][:, :250], t[observed], noise_std=0.1, steps=400, progress=False)
    with torch.no_grad():
        test = slice(250, 300)
        pred, _, _ = model(noisy[observed][:, test], t[observed], t_out=t, sample=False)
        held = ~observed
        mse = ((pred[held] - clean[held][:, test]) ** 2).mean().item()
        baseline = ((linear_interpolation(t[observed], noisy[observed][:, test], t[held]) - clean[held][:, test]) ** 2).mean().item()
    assert mse < 0.75 * baseline, (mse, baseline)
