"""nodelib.timevarying: θ(t) as one abstraction; chapter 1's unshared ResNet is its piecewise-constant case."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nodelib import odeint, seed_everything
from nodelib.blocks import MLPField, ODEBlock, ResNet
from nodelib.timevarying import (
    BasisExpansionParameters,
    ConstantParameters,
    EvolvingParameterField,
    PiecewiseConstantParameters,
    TimeVaryingField,
)

F64 = torch.float64


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-13), (torch.float32, 1e-5)])
def test_piecewise_constant_parameters_reproduce_the_unshared_resnet(dtype, tol):
    """N Euler steps of f(t, z; θ(t)) with θ constant on each step are the ResNet of N distinct blocks."""
    seed_everything(0)
    fields = [MLPField(2, hidden=8, time_input=True).to(dtype) for _ in range(6)]
    resnet = ResNet(fields, t0=0.5, t1=2.0)
    field = TimeVaryingField(fields[0], PiecewiseConstantParameters(fields, 0.5, 2.0))
    z0 = torch.randn(5, 2, dtype=dtype)
    ode = odeint(field, z0, torch.tensor([0.5, 2.0], dtype=dtype), method="euler", step_size=0.25)[-1]
    torch.testing.assert_close(ode, resnet(z0), rtol=tol, atol=tol)
    # the same parameters, the same count, and gradients that reach every piece
    assert sum(p.numel() for p in field.parameters()) == sum(p.numel() for f in fields for p in f.parameters())
    ode.sum().backward()
    assert all(v.grad is not None and (v.grad.flatten(1).abs().sum(1) > 0).all() for v in field.trajectory.values)


def test_piece_lookup_on_boundaries_and_round_off():
    traj = PiecewiseConstantParameters(MLPField(1), 0.0, 1.0, n_pieces=4)
    assert [traj.piece(torch.tensor(v)) for v in (0.0, 0.2499, 0.25, 0.5, 0.99, 1.0)] == [0, 0, 1, 2, 3, 3]
    just_below = torch.tensor(0.75, dtype=torch.float32) - 1e-7  # a float32 grid point that misses 0.75
    assert traj.piece(just_below) == 3


def test_constant_parameters_are_a_plain_neural_ode():
    seed_everything(1)
    template = MLPField(2, hidden=8).double()
    field = TimeVaryingField(template, ConstantParameters(template))
    z0, t = torch.randn(3, 2, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    torch.testing.assert_close(odeint(field, z0, t), odeint(template, z0, t), rtol=1e-12, atol=1e-12)


def test_basis_expansion_interpolates_between_coefficients():
    """With hat functions on [0, 1], θ(1/2) is the mean of the two coefficient sets."""
    template = nn.Linear(2, 2)
    hats = lambda t: torch.stack([1 - t, t])
    traj = BasisExpansionParameters(template, hats, 2, init="random")
    w0, w1 = traj.values[0][0], traj.values[0][1]
    assert not torch.equal(w0, w1)
    torch.testing.assert_close(traj(torch.tensor(0.5))["weight"], (w0 + w1) / 2)
    torch.testing.assert_close(traj(torch.tensor(0.0))["weight"], w0)
    # a one-function constant basis is the constant trajectory
    const = BasisExpansionParameters(template, lambda t: torch.ones(1), 1)
    torch.testing.assert_close(const(torch.tensor(0.3))["weight"], template.weight)
    with pytest.raises(ValueError, match="must return a 1-D tensor of 3 values"):
        BasisExpansionParameters(template, hats, 3)(torch.tensor(0.1))


def test_evolving_parameters_form_a_structured_state():
    """z' = w z, w' = -w: w(t) = w0 e^{-t}, so z(t) = z0 exp(w0 (1 - e^{-t}))."""

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(0.7, dtype=F64))

        def forward(self, t, z):
            return self.w * z

    field = EvolvingParameterField(Scale(), lambda t, thetas: tuple(-th for th in thetas))
    z0 = torch.tensor([1.0, 2.0], dtype=F64)
    block = ODEBlock(field, 0.0, 1.0, rtol=1e-10, atol=1e-12, backend="nodelib")
    z1, w1 = block(field.initial_state(z0))
    expected = torch.exp(torch.tensor(0.7 * (1 - torch.e ** -1.0), dtype=F64))
    torch.testing.assert_close(z1, z0 * expected, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(w1, torch.tensor(0.7 * torch.e ** -1.0, dtype=F64), rtol=1e-8, atol=1e-10)
    z1.sum().backward()  # the initial weight is learned
    assert field.initial.values[0].grad is not None


def test_clear_errors():
    with pytest.raises(ValueError, match="buffers"):
        ConstantParameters(nn.BatchNorm1d(2))
    with pytest.raises(ValueError, match="no parameters"):
        ConstantParameters(nn.ReLU())
    with pytest.raises(ValueError, match="other parameters than template 0"):
        PiecewiseConstantParameters([MLPField(2), MLPField(3)])
    with pytest.raises(ValueError, match="give n_pieces"):
        PiecewiseConstantParameters(MLPField(2))
    with pytest.raises(ValueError, match="other parameters than this template"):
        TimeVaryingField(MLPField(3), ConstantParameters(MLPField(2)))


# --- parameters evolved by a discrete flow map (ANODEV2, chapter 7) --------------------------------------------------

from nodelib.timevarying import EvolvedParameters  # noqa: E402


class _Scale(nn.Module):
    """Φ(θ, δt) = e^{a δt} θ with a learned a."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.5))

    def forward(self, thetas, dt):
        return tuple(torch.exp(self.a * dt) * t for t in thetas)


def test_evolved_parameters_follow_the_flow_and_hold_between_grid_points():
    template = nn.Linear(2, 3)
    traj = EvolvedParameters(template, _Scale(), n_steps=4, t0=0.0, t1=2.0)
    assert traj.dt == 0.5
    states = traj.states()
    assert len(states) == 5
    for k, state in enumerate(states):
        assert torch.allclose(state[0], template.weight * math.exp(0.5 * 0.5 * k))
    assert traj.index(torch.tensor(0.49)) == 0 and traj.index(torch.tensor(0.5)) == 1
    assert traj.index(torch.tensor(2.0)) == 4
    # a float32 grid point a hair below its boundary still lands on it
    assert traj.index(torch.tensor(3 * 0.5, dtype=torch.float32) - 1e-7) == 3
    assert torch.allclose(traj(torch.tensor(1.2))["weight"], states[2][0])
    traj(torch.tensor(2.0))["bias"].sum().backward()
    assert traj.flow.a.grad is not None and traj.values[1].grad is not None  # p and θ_0 both learn


def test_evolved_parameters_without_steps_are_constant_and_bad_flows_are_named():
    template = nn.Linear(2, 3)
    traj = EvolvedParameters(template, _Scale(), n_steps=0)
    assert len(traj.states()) == 1 and torch.equal(traj(torch.tensor(0.7))["weight"], template.weight)
    with pytest.raises(ValueError, match="non-negative integer"):
        EvolvedParameters(template, _Scale(), n_steps=-1)
    with pytest.raises(TypeError, match="flow must be callable"):
        EvolvedParameters(template, 3, n_steps=2)  # type: ignore[arg-type]
    bad = EvolvedParameters(template, lambda thetas, dt: (thetas[0],), n_steps=2)
    with pytest.raises(ValueError, match="one tensor per parameter"):
        bad.states()
    with pytest.raises(ValueError, match=r"upto must be in \[0, 2\]"):
        EvolvedParameters(template, _Scale(), n_steps=2).states(3)
