"""Neural-GODE (chapter 8, in preparation): the B-spline basis of Eqs. 6-8 with the paper's knots and clamped ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from nodelib.gode import bspline_basis, bspline_knots

F64 = torch.float64


def _scipy_basis(t: np.ndarray, knots: np.ndarray, degree: int) -> np.ndarray:
    """Each basis function by scipy's independent implementation, 0 outside its support."""
    n_basis = len(knots) - degree - 1
    out = np.zeros((len(t), n_basis))
    for i in range(n_basis):
        element = BSpline.basis_element(knots[i:i + degree + 2], extrapolate=False)
        out[:, i] = np.nan_to_num(element(t), nan=0.0)
    return out


@pytest.mark.parametrize("knots", ["clamped", "uniform"])
@pytest.mark.parametrize("degree,n_basis,t_end", [(0, 4, 1.0), (1, 8, 1.0), (2, 5, 2.5), (3, 7, 1.0), (5, 8, 3.0)])
def test_matches_scipy_at_random_times(knots, degree, n_basis, t_end):
    t = torch.rand(200, generator=torch.Generator().manual_seed(degree), dtype=F64) * t_end  # not on knots (a.s.)
    ours = bspline_basis(t, n_basis, degree, t_end, knots)
    u = bspline_knots(n_basis, degree, t_end, knots).numpy()
    assert ours.shape == (200, n_basis) and ours.dtype == F64
    assert np.allclose(ours.numpy(), _scipy_basis(t.numpy(), u, degree), atol=1e-12)


@pytest.mark.parametrize("degree,n_basis", [(0, 1), (0, 5), (1, 2), (1, 8), (3, 4), (3, 9)])
def test_clamped_knots_are_a_partition_of_unity_on_the_closed_interval(degree, n_basis):
    t = torch.linspace(0, 2.0, 101, dtype=F64)
    basis = bspline_basis(t, n_basis, degree, t_end=2.0)
    assert torch.allclose(basis.sum(1), torch.ones(101, dtype=F64), atol=1e-12)
    assert bool((basis >= 0).all())
    assert basis[0, 0] == 1 and basis[-1, -1] == 1  # the ends interpolate the first and last coefficient


def test_the_papers_knots_leave_the_first_step_without_weights():
    euler = torch.arange(20, dtype=F64) * 0.05  # the points where Euler with step 0.05 evaluates the field
    for degree, covered in ((1, 15), (5, 5)):
        total = bspline_basis(euler, 8, degree, knots="uniform").sum(1)
        assert float(total[0]) == 0.0  # θ(0) = 0: the first step does nothing
        assert int(((total - 1).abs() < 1e-12).sum()) == covered  # sums to 1 only on [t_k, t_m]
        assert bool((total <= 1 + 1e-12).all())
    u = bspline_knots(8, 1, knots="uniform")
    assert torch.allclose(u, torch.arange(10, dtype=F64) / 9)  # t_i = i T / (k + m)


def test_the_two_ends_neural_ode_and_resnet():
    t = torch.linspace(0, 1, 11, dtype=F64)[:-1]
    # k = 0, m = 1 (Eqs. 7-8): B_00 = 1 on [t_0, t_1) = [0, T): constant weights, a Neural ODE
    for knots in ("clamped", "uniform"):
        assert torch.equal(bspline_basis(t, 1, 0, knots=knots), torch.ones(10, 1, dtype=F64))
    # degree 0 with one basis function per Euler step: step n uses ξ_n alone, a ResNet with a weight per block
    steps = torch.arange(10, dtype=F64) / 10
    for knots in ("clamped", "uniform"):
        assert torch.equal(bspline_basis(steps, 10, 0, knots=knots), torch.eye(10, dtype=F64))


def test_in_the_graph_on_the_device_and_dtype_of_t():
    t = torch.tensor([0.3, 0.55], dtype=F64, requires_grad=True)
    basis = bspline_basis(t, 6, 2)
    (grad,) = torch.autograd.grad(basis[:, 2].sum(), t)
    eps = 1e-6
    fd = (bspline_basis(t.detach() + eps, 6, 2)[:, 2] - bspline_basis(t.detach() - eps, 6, 2)[:, 2]) / (2 * eps)
    assert torch.allclose(grad, fd, atol=1e-6)
    single = bspline_basis(torch.tensor([0.25, 1.0]), 4, 1)
    assert single.dtype == torch.float32 and single.device == torch.device("cpu")
    assert bspline_basis(torch.zeros(0, dtype=F64), 4, 1).shape == (0, 4)


@pytest.mark.parametrize("kwargs,message", [
    ({"degree": -1}, "degree must be an integer >= 0"),
    ({"n_basis": 0}, "n_basis must be a positive integer"),
    ({"n_basis": 2, "degree": 3}, r"n_basis >= degree \+ 1 = 4"),
    ({"knots": "open"}, "knots must be one of"),
    ({"t_end": 0.0}, "t_end must be a positive finite number"),
    ({"t": torch.tensor([0.5, 1.5], dtype=F64)}, r"t must lie in \[0, t_end\] = \[0, 1.0\]"),
    ({"t": torch.tensor([0.5, float("nan")], dtype=F64)}, r"t must be finite.*positions \[1\]"),
    ({"t": torch.zeros(2, 2, dtype=F64)}, "t must be a 1-D floating-point tensor"),
    ({"t": torch.tensor([0, 1])}, "t must be a 1-D floating-point tensor"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = {"t": torch.tensor([0.2, 0.4], dtype=F64), "n_basis": 4, "degree": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        bspline_basis(**args)


def test_the_papers_knots_allow_fewer_basis_functions_than_clamped_ones():
    # uniform knots exist for any m >= 1, e.g. 2 basis functions of degree 3 (the recursion just has support gaps)
    basis = bspline_basis(torch.linspace(0, 1, 7, dtype=F64), 2, 3, knots="uniform")
    assert basis.shape == (7, 2) and bool((basis.sum(1) <= 1).all())
