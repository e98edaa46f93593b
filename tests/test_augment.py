"""nodelib.augment, nodelib.nfe and the chapter 4 toy data: the building blocks of the augmentation chapter."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nodelib import odeint, seed_everything
from nodelib.augment import Augment, AugmentedNODE, augment
from nodelib.blocks import MLPField, ODEBlock
from nodelib.data import concentric_spheres, flip_1d
from nodelib.nfe import NFECounter
from nodelib.training import train


def test_augment_vectors_and_feature_maps():
    x = torch.randn(4, 3)
    assert torch.equal(augment(x, 2)[:, :3], x) and (augment(x, 2)[:, 3:] == 0).all()
    maps = torch.randn(2, 5, 7, 7)
    out = Augment(3)(maps)
    assert out.shape == (2, 8, 7, 7) and (out[:, 5:] == 0).all() and torch.equal(out[:, :5], maps)
    assert augment(x, 0) is x
    with pytest.raises(ValueError, match="non-negative integer"):
        augment(x, -1)
    with pytest.raises(ValueError, match="batch"):
        augment(torch.zeros(3), 1)


def test_conv_ode_block_on_augmented_channels():
    field = nn.Conv2d(6, 6, 3, padding=1)
    block = ODEBlock(lambda t, z: torch.tanh(field(z)), method="rk4", options={"step_size": 0.25})
    assert block(Augment(2)(torch.randn(2, 4, 8, 8))).shape == (2, 6, 8, 8)


def test_nfe_counts_match_a_hand_count_on_a_fixed_step_solver():
    counter = NFECounter(MLPField(2, hidden=4))
    z0 = torch.randn(3, 2, requires_grad=True)
    out = odeint(counter, z0, torch.tensor([0.0, 1.0]), method="rk4", step_size=0.1)
    assert counter.counts == {"forward": 40, "backward": 0}  # 10 steps x 4 stages
    with counter.phase("backward"):
        out[-1].sum().backward()
    assert counter.backward_nfe == 0  # backprop replays the graph: no new evaluations
    assert counter.reset() == {"forward": 40, "backward": 0} and counter.forward_nfe == 0


def test_adjoint_backward_evaluations_are_counted_as_backward():
    counter = NFECounter(MLPField(2, hidden=4))
    block = ODEBlock(counter, method="rk4", options={"step_size": 0.25}, adjoint=True)
    loss = block(torch.randn(3, 2)).sum()
    with counter.phase("backward"):
        loss.backward()
    assert counter.forward_nfe == 16 and counter.backward_nfe > 0


def test_toy_data():
    x, y = flip_1d(100, seed=0)
    assert x.shape == (100, 1) and torch.equal(y, -x) and x.abs().max() <= 1
    for dim in (1, 2, 5):
        pts, labels = concentric_spheres(400, dim, seed=1)
        r = pts.norm(dim=1)
        assert pts.shape == (400, dim) and labels.sum() == 200
        assert (r[labels == 1] < 0.5).all() and ((r[labels == 0] > 1.0) & (r[labels == 0] < 1.5)).all()
    with pytest.raises(ValueError, match="r_inner"):
        concentric_spheres(10, 2, r_inner=2.0)


@pytest.mark.slow  # over 10 s: the full suite runs it, the fast loop leaves it out
def test_plain_node_cannot_flip_the_line_but_an_augmented_one_can():
    """Chapter 4's lesson: the best monotone fit of -x on [-1, 1] has MSE 1/3; one extra dimension removes the limit."""
    x, y = flip_1d(128, seed=0)
    x, y = x.float(), y.float()
    solver = dict(method="rk4", options={"step_size": 0.1})
    final = {}
    for extra in (0, 1):
        seed_everything(0)
        model = AugmentedNODE(1, 1, extra=extra, solver=solver, readout="project")  # the flow's own output
        history = train(lambda step: ((model(x) - y) ** 2).mean(), torch.optim.Adam(model.parameters(), lr=1e-2), 300,
                        progress=False)
        final[extra] = min(history.losses)
    assert final[0] > 0.25  # stays far from zero: a 1-D flow is increasing
    assert final[1] < 1e-2


def test_augmented_node_separates_the_circles():
    """Chapter 4's claim for the 2-D example: with one extra dimension, accuracy of at least 99%."""
    x, y = concentric_spheres(256, 2, seed=1)
    x, y = x.float(), y.float()
    seed_everything(0)
    model = AugmentedNODE(2, 1, extra=1, solver=dict(method="rk4", options={"step_size": 0.1}))
    train(lambda step: nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y),
          torch.optim.Adam(model.parameters(), lr=1e-2), 200, progress=False)
    with torch.no_grad():
        accuracy = ((model(x)[:, 0] > 0).float() == y).float().mean().item()
    assert accuracy >= 0.99


def test_train_counts_backward_evaluations_through_its_hooks():
    counter = NFECounter(MLPField(2, hidden=4))
    block = ODEBlock(counter, method="rk4", options={"step_size": 0.5}, adjoint=True)
    x = torch.randn(4, 2)
    seen = []
    train(lambda step: block(x).pow(2).mean(), torch.optim.SGD(block.parameters(), lr=0.1), 3,
          backward_context=lambda: counter.phase("backward"), on_step_end=lambda step: seen.append(counter.reset()),
          progress=False)
    assert [c["forward"] for c in seen] == [8, 8, 8]  # 2 RK4 steps x 4 stages
    assert all(c["backward"] == 8 for c in seen)  # the adjoint walks the same grid backwards


def test_readout_options():
    x = torch.randn(5, 2)
    projected = AugmentedNODE(2, 1, extra=1, readout="project", solver=dict(method="rk4", options={"step_size": 0.5}))
    assert projected.readout is None and projected(x).shape == (5, 1)
    with torch.no_grad():
        final = projected.ode(augment(x, 1))
    assert torch.equal(projected(x), final[:, :1])
    with pytest.raises(ValueError, match="readout must be"):
        AugmentedNODE(2, readout="softmax")
    with pytest.raises(ValueError, match="out_dim"):
        AugmentedNODE(1, 2, readout="project")
