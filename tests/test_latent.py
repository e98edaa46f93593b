"""nodelib.latent (chapter 3): shapes, the ELBO, and the promise that a trained latent ODE beats linear
interpolation of the noisy observations on held-out points of unseen spirals."""
from __future__ import annotations

import math

import pytest
import torch

from nodelib import seed_everything
from nodelib.data import bidirectional_spirals, linear_interpolation
from nodelib.latent import LatentODE, negative_elbo
from nodelib.training import train_latent_ode


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


def test_kl_term_matches_torch_distributions():
    """The ELBO's KL term is KL(N(mean, exp(logvar)) || N(0, 1)), summed over latent dimensions."""
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    pred = x = torch.zeros(2, 4, 1)
    nll_only = negative_elbo(pred, x, torch.zeros(4, 3), torch.zeros(4, 3), 0.5)
    kl = negative_elbo(pred, x, mean, logvar, 0.5) - nll_only
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(4, 3), torch.ones(4, 3))
    expected = torch.distributions.kl_divergence(q, p).sum(-1).mean()
    assert kl.item() == pytest.approx(expected.item(), rel=1e-5)
    assert (negative_elbo(pred, x, mean, logvar, 0.5, kl_weight=0.0) - nll_only).abs().item() < 1e-6


def test_the_encoder_reads_the_observations_backwards_in_time():
    """The GRU runs from the last observation to the first, so its state ends on x(t0): the encoding of z0 is
    exactly a GRU loop over the reversed sequence."""
    seed_everything(0)
    model = LatentODE(obs_dim=2, latent_dim=3)
    x, t = torch.randn(6, 4, 2), torch.linspace(0, 1, 6)
    mean, logvar = model.encode(x, t)
    reversed_mean, _ = model.encode(x.flip(0), t)
    assert not torch.allclose(mean, reversed_mean)
    # the same by hand: feed (x_k, gap to the next time) for k = T-1, ..., 0, one GRU step at a time
    gru, h = model.encoder, None
    gaps = list(torch.diff(t).tolist()) + [0.0]
    for k in reversed(range(len(t))):
        step_in = torch.cat([x[k], torch.full((4, 1), gaps[k])], dim=-1)[None]
        _, h = gru(step_in, h)
    by_hand, _ = model.to_posterior(h[-1]).chunk(2, dim=-1)
    torch.testing.assert_close(mean, by_hand)


@pytest.mark.slow  # over 10 s: the full suite runs it, the fast loop leaves it out
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
