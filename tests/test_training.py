"""nodelib.training: the shared loop, and chapter 3's promise that a linear model identifies A."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nodelib import seed_everything
from nodelib.data import A_CAPELL, linear_trajectory
from nodelib.training import fit_windows, train


def test_train_minimises_and_records():
    w = nn.Parameter(torch.tensor([3.0]))
    history = train(lambda step: (w - 1) ** 2, torch.optim.SGD([w], lr=0.1), 100, eval_fn=lambda: {"w": w.item()},
                    eval_every=25, snapshot_fn=lambda: w.item(), snapshot_every=50, progress=False)
    assert history.final_loss < 1e-8 and len(history.losses) == 100
    assert history.eval_steps == [25, 50, 75, 100] and history.evals["w"][-1] == pytest.approx(1.0)
    assert [s for s, _ in history.snapshots] == [50, 100]
    assert len(history.seconds) == 100 and history.steps == list(range(1, 101))


def test_gradient_clipping_bounds_the_step():
    """With SGD at lr 1, the first step moves w by exactly the clipped gradient (norm 0.5, not 40)."""
    w = nn.Parameter(torch.tensor([3.0, 4.0]))
    train(lambda step: 4 * (w**2).sum(), torch.optim.SGD([w], lr=1.0), 1, clip_grad_norm=0.5, progress=False)
    moved = torch.tensor([3.0, 4.0]) - w.detach()
    assert moved.norm().item() == pytest.approx(0.5, rel=1e-6)
    torch.testing.assert_close(moved / moved.norm(), torch.tensor([0.6, 0.8]))


def test_train_stops_on_a_non_finite_loss():
    w = nn.Parameter(torch.tensor([1.0]))
    with pytest.raises(FloatingPointError, match="step 3"):
        train(lambda step: w * (float("nan") if step == 3 else 1.0), torch.optim.SGD([w], lr=0.1), 10, progress=False)
    with pytest.raises(ValueError, match="n_steps"):
        train(lambda step: w.sum(), torch.optim.SGD([w], lr=0.1), 0)


def test_a_linear_model_identifies_the_spiral_matrix():
    """Chapter 3: trained on the sampled spiral, z' = W z recovers A's eigenvalues -0.1 ± 2i to within 0.01."""
    seed_everything(0)
    t = torch.linspace(0.0, 10.0, 500)
    z = linear_trajectory(A_CAPELL, torch.tensor([2.0, 0.0], dtype=torch.float64), t.double()).float()
    linear = nn.Linear(2, 2, bias=False)
    fit_windows(lambda s, y: linear(y), list(linear.parameters()), t, z, epochs=60, lr=1e-2, progress=False)
    learned = torch.sort(torch.linalg.eigvals(linear.weight.detach().double()).imag).values
    true = torch.sort(torch.linalg.eigvals(A_CAPELL).imag).values
    assert torch.allclose(learned, true, atol=0.01)
    assert (torch.linalg.eigvals(linear.weight.detach().double()).real - (-0.1)).abs().max() < 0.01


def test_fit_windows_refuses_irregular_samples():
    t = torch.tensor([0.0, 0.1, 0.5, 0.6, 1.0])
    with pytest.raises(ValueError, match="evenly spaced"):
        fit_windows(lambda s, y: -y, [nn.Parameter(torch.zeros(1))], t, torch.zeros(5, 2), epochs=1, window=2, progress=False)
