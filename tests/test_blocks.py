"""nodelib.blocks (chapter 1): a weight-shared ResNet is Euler's method; the ODE block solves the ODE."""
from __future__ import annotations

import math

import pytest
import torch
import torchdiffeq
from torch import nn

from nodelib import odeint, seed_everything
from nodelib.blocks import MLPField, ODEBlock, ResidualBlock, ResNet
from nodelib.utils import count_parameters

F64 = torch.float64


@pytest.fixture
def field():
    seed_everything(0)
    return MLPField(2, hidden=16).double()


@pytest.mark.parametrize("n_blocks", [1, 4, 10, 50])
def test_shared_resnet_equals_euler_to_round_off(field, n_blocks):
    z0 = torch.randn(8, 2, dtype=F64)
    resnet = ResNet.shared(field, n_blocks)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    ours = odeint(field, z0, t, method="euler", step_size=1.0 / n_blocks)[-1]
    theirs = torchdiffeq.odeint(field, z0, t, method="euler", options={"step_size": 1.0 / n_blocks})[-1]
    out = resnet(z0)
    assert (out - ours).abs().max().item() < 1e-14
    assert (out - theirs).abs().max().item() < 1e-14
    assert count_parameters(resnet) == count_parameters(field)  # sharing: one field's parameters


def test_unshared_resnet_is_euler_for_a_piecewise_constant_field():
    seed_everything(1)
    fields = [MLPField(2, hidden=8).double() for _ in range(5)]
    resnet = ResNet(fields)

    def piecewise(t, z):  # the field of block k on [k/5, (k+1)/5)
        k = min(int(math.floor(float(t) * 5 + 1e-9)), 4)
        return fields[k](t, z)

    z0 = torch.randn(3, 2, dtype=F64)
    euler = odeint(piecewise, z0, torch.tensor([0.0, 1.0], dtype=F64), method="euler", step_size=0.2)[-1]
    assert (resnet(z0) - euler).abs().max().item() < 1e-14
    assert count_parameters(resnet) == 5 * count_parameters(fields[0])


def test_resnet_return_all_and_times():
    resnet = ResNet.shared(MLPField(2).double(), 4, t0=1.0, t1=3.0)
    assert resnet.step == 0.5
    assert [b.t for b in resnet.blocks] == [1.0, 1.5, 2.0, 2.5]
    states = resnet(torch.zeros(5, 2, dtype=F64), return_all=True)
    assert states.shape == (5, 5, 2)


def test_residual_block_is_one_euler_step(field):
    z = torch.randn(4, 2, dtype=F64)
    block = ResidualBlock(field, step=0.3, t=0.2)
    assert torch.equal(block(z), z + 0.3 * field(torch.tensor(0.2, dtype=F64), z))


def test_time_input_field_sees_time():
    f = MLPField(2, hidden=8, time_input=True).double()
    z = torch.randn(6, 2, dtype=F64)
    assert not torch.allclose(f(torch.tensor(0.0, dtype=F64), z), f(torch.tensor(1.0, dtype=F64), z))


@pytest.mark.parametrize("backend", ["torchdiffeq", "nodelib"])
def test_ode_block_solves_a_linear_ode(backend):
    lin = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=F64))
    block = ODEBlock(lambda t, z: lin(z), method="dopri5", rtol=1e-9, atol=1e-9, backend=backend)
    z0 = torch.tensor([[2.0, 0.0]], dtype=F64)
    expected = z0 @ torch.linalg.matrix_exp(lin.weight).T
    assert (block(z0) - expected).abs().max() < 1e-7
    assert block.nfe > 0
    block.reset_nfe()
    assert block.nfe == 0


def test_ode_block_adjoint_gives_the_same_gradient_as_backprop(field):
    z0 = torch.randn(4, 2, dtype=F64)
    grads = []
    for adjoint in (False, True):
        field.zero_grad()
        block = ODEBlock(field, rtol=1e-10, atol=1e-10, adjoint=adjoint)
        block(z0).pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in field.parameters()]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-6, atol=1e-8)


def test_block_argument_errors(field):
    with pytest.raises(ValueError, match="backend"):
        ODEBlock(field, backend="scipy")
    with pytest.raises(ValueError, match="adjoint=True needs backend='torchdiffeq'"):
        ODEBlock(field, adjoint=True, backend="nodelib")
    with pytest.raises(ValueError, match="n_blocks must be a positive integer"):
        ResNet.shared(field, 0)
    with pytest.raises(ValueError, match="t0 < t1"):
        ResNet([field], t0=1.0, t1=0.0)
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        MLPField(0)
    with pytest.raises(ValueError, match="last dimension is 2"):
        field(torch.tensor(0.0), torch.zeros(3, 5, dtype=F64))
