"""Neural-GODE (chapter 8): the B-spline basis of Eqs. 6-8, the convt layer and field, their two ends, the GODE
view (exponential families, the regressor of Eq. 5) and the sweeps of Tables 2-4."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline
from torch import nn

from nodelib.blocks import ODEBlock
from nodelib.classification import build_classifier
from nodelib.gode import (
    FAMILIES,
    BSplineBasis,
    BSplineConv,
    GODEField,
    GODERegressor,
    _Conv,
    bspline_basis,
    bspline_knots,
    gode_parameter_count,
    pearson_dispersion,
)
from nodelib.layers import ConvResBlock
from nodelib.timevarying import PiecewiseConstantParameters
from nodelib.utils import count_parameters

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
@pytest.mark.parametrize("degree,n_basis,t1", [(0, 4, 1.0), (1, 8, 1.0), (2, 5, 2.5), (3, 7, 1.0), (5, 8, 3.0)])
def test_matches_scipy_at_random_times(knots, degree, n_basis, t1):
    t = torch.rand(200, generator=torch.Generator().manual_seed(degree), dtype=F64) * t1  # not on knots (a.s.)
    ours = bspline_basis(t, n_basis, degree, t1, knots)
    u = bspline_knots(n_basis, degree, t1, knots).numpy()
    assert ours.shape == (200, n_basis) and ours.dtype == F64
    assert np.allclose(ours.numpy(), _scipy_basis(t.numpy(), u, degree), atol=1e-12)


@pytest.mark.parametrize("degree,n_basis", [(0, 1), (0, 5), (1, 2), (1, 8), (3, 4), (3, 9)])
def test_clamped_knots_are_a_partition_of_unity_on_the_closed_interval(degree, n_basis):
    t = torch.linspace(0, 2.0, 101, dtype=F64)
    basis = bspline_basis(t, n_basis, degree, t1=2.0)
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
    ({"degree": -1}, "degree must be a non-negative integer"),
    ({"n_basis": 0}, "n_basis must be a positive integer"),
    ({"n_basis": 2, "degree": 3}, r"n_basis >= degree \+ 1 = 4"),
    ({"knots": "open"}, "knots must be one of"),
    ({"t1": 0.0}, "t1 must be a positive finite number"),
    ({"t": torch.tensor([0.5, 1.5], dtype=F64)}, r"t must lie in \[0, t1\] = \[0, 1.0\]"),
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


# --- the basis as a callable, the convt layer and the field ---------------------------------------------------


def test_basis_module_matches_the_function_and_takes_one_time():
    basis = BSplineBasis(6, 2, 2.0, "uniform")
    t = torch.linspace(0, 2, 13, dtype=F64)
    assert torch.equal(basis(t), bspline_basis(t, 6, 2, 2.0, "uniform"))
    assert torch.equal(basis(torch.tensor(0.7, dtype=F64)), bspline_basis(torch.tensor([0.7], dtype=F64), 6, 2, 2.0,
                                                                          "uniform")[0])
    # beyond the interval (where an adaptive solver overshoots T before interpolating back) the basis is held
    assert torch.equal(basis(torch.tensor(2.5, dtype=F64)), basis(torch.tensor(2.0, dtype=F64)))
    assert torch.equal(basis(torch.tensor(-0.1, dtype=F64)), basis(torch.tensor(0.0, dtype=F64)))
    with pytest.raises(ValueError, match="the basis needs finite times"):
        basis(torch.tensor(float("nan")))


class _PlainField(nn.Module):
    """GN-ReLU-conv-GN-ReLU-conv with constant bias-free kernels: the Neural ODE end, written independently."""

    def __init__(self, gode: GODEField, piece: int = 0) -> None:
        super().__init__()
        self.gode, self.piece = gode, piece

    def forward(self, t, x):
        for norm, conv in zip(self.gode.norms, self.gode.convs):
            x = nn.functional.conv2d(torch.relu(norm(x)), conv.coefficients[self.piece], padding=1)
        return x


@pytest.mark.parametrize("method,options", [("euler", {"step_size": 0.05}), ("dopri5", {"rtol": 1e-6, "atol": 1e-8})])
def test_degree_0_with_one_basis_function_is_a_neural_ode_with_constant_weights(method, options):
    torch.manual_seed(0)
    for knots in ("clamped", "uniform"):
        field = GODEField(8, n_basis=1, degree=0, knots=knots).double()
        x = torch.randn(3, 8, 5, 5, dtype=F64)
        ours = ODEBlock(field, 0.0, 1.0, method=method, **options)(x)
        plain = ODEBlock(_PlainField(field), 0.0, 1.0, method=method, **options)(x)
        assert torch.allclose(ours, plain, rtol=0, atol=1e-13)
        for t in (0.0, 0.37, 1.0):  # θ(t) = ξ_0 at every time, the ends included
            assert torch.equal(field.convs[0].weight(t), field.convs[0].coefficients[0])


@pytest.mark.parametrize("n_steps,t1", [(5, 1.0), (8, 2.0)])
def test_degree_0_with_a_basis_function_per_euler_step_is_a_resnet_with_a_weight_per_block(n_steps, t1):
    torch.manual_seed(1)
    h = t1 / n_steps
    field = GODEField(8, n_basis=n_steps, degree=0, t1=t1).double()
    x = torch.randn(2, 8, 6, 6, dtype=F64)
    ours = ODEBlock(field, 0.0, t1, method="euler", step_size=h)(x)
    # Eq. 4 / Eq. 1: N residual blocks x + h σ(...), block n with the n-th coefficients (the GroupNorms shared)
    blocks = []
    for n in range(n_steps):
        block = ConvResBlock(8).double()
        block.gn1, block.gn2 = field.norms[0], field.norms[1]
        with torch.no_grad():
            block.conv1.weight.copy_(field.convs[0].coefficients[n])
            block.conv2.weight.copy_(h * field.convs[1].coefficients[n])
        blocks.append(block)
    assert torch.allclose(ours, nn.Sequential(*blocks)(x), rtol=0, atol=1e-12)
    # and the core's piecewise-constant parameters give the same kernel at every step
    pieces = PiecewiseConstantParameters(_Conv(8, 3).double(), 0.0, t1, n_pieces=n_steps)
    with torch.no_grad():
        pieces.values[0].copy_(field.convs[0].coefficients)
    for n in range(n_steps):
        t = torch.tensor(n * h, dtype=torch.float32)  # a float32 grid point, a hair off the knot
        assert torch.equal(field.convs[0].weight(t).double(), pieces(t)["conv.weight"])


def test_the_papers_knots_make_the_first_step_do_nothing_and_clamped_ones_do_not():
    torch.manual_seed(2)
    x = torch.randn(2, 8, 5, 5)
    uniform = GODEField(8, n_basis=8, degree=1, knots="uniform")
    clamped = GODEField(8, n_basis=8, degree=1, knots="clamped")
    assert torch.equal(uniform(torch.tensor(0.0), x), torch.zeros_like(x))
    assert float(clamped(torch.tensor(0.0), x).detach().abs().max()) > 0.01
    # its gradient reaches ξ_0 only through later steps: at t = 0 no coefficient gets any
    uniform(torch.tensor(0.0), x).sum().backward()
    assert all(float(c.coefficients.grad.abs().max()) == 0 for c in uniform.convs)


@pytest.mark.parametrize("n_basis,degree,knots", [(8, 1, "clamped"), (8, 3, "clamped"), (12, 5, "uniform"), (1, 0, "clamped")])
def test_independent_init_gives_theta_an_ordinary_convolutions_scale(n_basis, degree, knots):
    torch.manual_seed(3)
    conv_std = float(torch.cat([nn.Conv2d(64, 64, 3, bias=False).weight.detach().flatten() for _ in range(4)]).std())
    layer = BSplineConv(64, n_basis, degree, knots=knots)
    t = torch.linspace(0, 1, 201)
    rms = math.sqrt(statistics.fmean(float(layer.weight(s).detach().pow(2).mean()) for s in t))
    assert abs(rms / conv_std - 1) < 0.08
    if n_basis > 1:  # without the factor, overlapping basis functions shrink θ(t)
        plain = math.sqrt(layer.basis.mean_square_sum())
        assert plain < 0.85
    shared = BSplineConv(64, n_basis, degree, knots="clamped", init="shared") if knots == "clamped" else None
    if shared is not None:  # every ξ_i the same draw: with clamped knots θ(t) = ξ_0 at every time
        for s in (0.0, 0.31, 1.0):
            assert torch.allclose(shared.weight(s), shared.coefficients[0], atol=1e-6)


def test_convt_layer_errors():
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer"):
        BSplineConv(4, 3, kernel_size=4)
    with pytest.raises(ValueError, match="init must be one of"):
        BSplineConv(4, 3, init="zeros")
    with pytest.raises(ValueError, match="n_basis >= degree"):
        GODEField(4, 1, degree=1)
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        GODEField(4, 2, n_layers=0)


# --- parameter counts of Tables 1, 2, 4 ----------------------------------------------------------------------


@pytest.mark.parametrize("in_channels,n_basis,n_layers,paper", [
    (1, 4, 2, 428_042),  # Table 1, MNIST (0.43M)
    (3, 8, 2, 724_106),  # Table 1, CIFAR-10 (0.72M); Table 2 m = 8
    (3, 2, 2, 281_738), (3, 6, 2, 576_650), (3, 10, 2, 871_562), (3, 12, 2, 1_019_018),  # Table 2
    (3, 2, 3, 355_594), (3, 4, 4, 724_362), (3, 8, 3, 1_019_146), (3, 8, 4, 1_314_186),  # Table 4
])
def test_parameter_counts_of_tables_1_2_and_4(in_channels, n_basis, n_layers, paper):
    net = build_classifier("gode", in_channels, 10, body_options={"n_basis": n_basis, "n_layers": n_layers})
    assert count_parameters(net) == gode_parameter_count(n_basis, in_channels, n_layers) == paper
    assert paper == (133_130 if in_channels == 1 else 134_282) + 36_864 * n_basis * n_layers + 128 * (n_layers - 2)


def test_table_4s_one_layer_rows_have_no_groupnorm():
    # (GN-ReLU-convt) once gives 128 parameters more than every one-layer row of Table 4: those rows have no GN
    for n_basis, paper in ((2, 207_754), (4, 281_482), (6, 355_210), (8, 428_938)):
        assert gode_parameter_count(n_basis, 3, 1) == paper + 128


def test_body_options_are_checked():
    with pytest.raises(ValueError, match="the odenet body takes no option 'n_basis'"):
        build_classifier("odenet", 1, 10, body_options={"n_basis": 4})
    with pytest.raises(ValueError, match="takes no option 'basis'; its options are n_basis, degree"):
        build_classifier("gode", 1, 10, body_options={"basis": 4})
    net = build_classifier("gode", 1, 10, body_options={"n_basis": 3, "knots": "uniform"}, t1=2.0)
    assert net.body[0].field.basis.knots == "uniform" and net.body[0].field.basis.t1 == 2.0
    assert net.body[0].solver.method == "euler" and net.body[0].solver.step_size == 0.05
    out = net(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10) and net.counter.reset()["forward"] == 40  # 40 Euler steps of 0.05 on [0, 2]


# --- the GODE view: exponential families and the regressor of Eq. 5 --------------------------------------------


def test_families_negative_log_likelihoods_are_the_distributions():
    eta = torch.linspace(-2, 2, 9, dtype=F64)
    y = torch.tensor([0, 1, 3, 0, 7, 2, 1, 0, 12], dtype=F64)
    poisson = torch.distributions.Poisson(eta.exp()).log_prob(y)
    assert torch.allclose(FAMILIES["poisson"].nll(eta, y), -poisson, atol=1e-12)
    b = (y > 1).to(F64)
    assert torch.allclose(FAMILIES["bernoulli"].nll(eta, b), -torch.distributions.Bernoulli(logits=eta).log_prob(b))
    assert torch.allclose(FAMILIES["gaussian"].nll(eta, y), -torch.distributions.Normal(eta, 1.0).log_prob(y))
    for name, target in (("poisson", y), ("bernoulli", b), ("gaussian", y)):
        family = FAMILIES[name]
        mu = family.mean(eta)
        assert bool((family.deviance(target, mu) >= -1e-12).all())
        assert float(family.deviance(target, target.clamp(0.01, 0.99) if name == "bernoulli" else target).abs()
                     .max()) < (0.1 if name == "bernoulli" else 1e-12)
        # the mean is b'(η): the derivative of the nll in η at y = 0 ... is μ - y
        e = eta.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(family.nll(e, target).sum(), e)
        assert torch.allclose(grad, mu - target, atol=1e-12)


def test_pearson_dispersion_is_one_for_poisson_counts_and_large_for_overdispersed_ones():
    g = torch.Generator().manual_seed(0)
    mu = torch.full((20_000,), 4.0, dtype=F64)
    y = torch.poisson(mu, generator=g)
    assert abs(pearson_dispersion(y, mu, FAMILIES["poisson"]) - 1) < 0.05
    rate = torch.distributions.Gamma(torch.tensor(1.0), torch.tensor(0.25)).sample((20_000,)).to(F64)
    assert pearson_dispersion(torch.poisson(rate, generator=g), mu, FAMILIES["poisson"]) > 3
    with pytest.raises(ValueError, match="more observations"):
        pearson_dispersion(y[:2], mu[:2], FAMILIES["poisson"], n_parameters=2)


def test_family_support_is_checked():
    with pytest.raises(ValueError, match=r"the poisson family needs counts responses; got \[1.5, -1.0\]"):
        FAMILIES["poisson"].check(torch.tensor([0.0, 1.5, 2.0, -1.0]))
    with pytest.raises(ValueError, match="bernoulli family needs binary"):
        FAMILIES["bernoulli"].check(torch.tensor([0.0, 2.0]))


@pytest.mark.slow  # over 10 s: the full suite runs it, the fast loop leaves it out
def test_gode_regressor_learns_poisson_counts_better_than_a_constant_rate():
    torch.manual_seed(4)
    x = torch.randn(600, 2)
    rate = torch.exp(0.8 * torch.tanh(2 * x[:, 0]) - 0.5 * x[:, 1] ** 2 + 1.0)
    y = torch.poisson(rate)
    model = GODERegressor(2, "poisson", n_basis=3, degree=1, extra=2)
    assert model(x).shape == (600,) and len(model.field.trajectory.values) == 2  # β(t) and b(t) both expanded
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(150):
        optimizer.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        optimizer.step()
    constant = float(FAMILIES["poisson"].nll(torch.full_like(y, float(y.mean().log())), y).mean())
    truth = float(FAMILIES["poisson"].nll(rate.log(), y).mean())
    fitted = float(model.loss(x, y).detach())
    assert fitted < constant - 0.25 and fitted < truth + 0.1
    assert bool((model.mean(x) > 0).all())


def test_gode_regressor_errors():
    model = GODERegressor(3, "bernoulli")
    with pytest.raises(ValueError, match=r"X must be a floating-point tensor of shape \(N, 3\)"):
        model(torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"y must have shape \(4,\)"):
        model.loss(torch.randn(4, 3), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="bernoulli family needs binary"):
        model.loss(torch.randn(4, 3), torch.tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="family must be one of"):
        GODERegressor(3, "gamma")


# --- the sweeps of Tables 2-4 --------------------------------------------------------------------------------


def test_table_rows_change_the_table_1_experiment_as_the_tables_do():
    from nodelib.experiments import registry
    from nodelib.experiments.gode_tables import TABLES, GODETable

    assert [len(TABLES[t]) for t in ("2", "3", "4")] == [12, 4, 16]
    base = registry.get("cifar10-gode-uniform").config
    assert base.body == {"degree": 1, "knots": "uniform", "n_basis": 8} and base.solver["step_size"] == 0.05
    runs = GODETable(table="2", rows=(12,), knots=("clamped",)).runs()
    e = runs["m8-k1-T3-clamped"]
    assert e.t1 == 3.0 and e.body == {"degree": 1, "knots": "clamped", "n_basis": 8} and e.epochs == 160
    e = GODETable(table="4", data="mnist", rows=(3,), knots=("uniform",)).runs()["m2-layers3-uniform"]
    assert e.body["n_layers"] == 3 and e.body["n_basis"] == 2 and e.data == "mnist"
    e = GODETable(table="3", rows=(4,)).runs()["node-dopri5"]  # a Neural-ODE row: no knots, one run per seed
    assert e.arch == "odenet" and e.body == {} and e.solver["method"] == "dopri5"
    with pytest.raises(ValueError, match="table 2 has rows 1..12"):
        GODETable(table="2", rows=(13,))


# --- the comparison of chapter 8 ------------------------------------------------------------------------------


def test_variant_names_build_the_two_ends_and_the_splines():
    from nodelib.gode import build_variant, parse_variant

    assert parse_variant("node") == {"arch": "gode", "body": {"n_basis": 1, "degree": 0}, "t1": 1.0,
                                     "solver": {"method": "euler", "step_size": 0.05, "gradient": "backprop"}}
    assert parse_variant("resnet", step=0.1)["body"] == {"n_basis": 10, "degree": 0}
    spec = parse_variant("gode-m8-k3-uniform-T2-dopri5")
    assert spec["body"] == {"n_basis": 8, "degree": 3, "knots": "uniform"} and spec["t1"] == 2.0
    assert spec["solver"]["method"] == "dopri5" and spec["solver"]["rtol"] == 1e-3
    assert parse_variant("resnet-T2", step=0.1)["body"]["n_basis"] == 20
    for bad, message in (("gode-m4-uniform", "unknown variant"), ("resnet-dopri5", "a ResNet needs Euler steps"),
                         ("resnet", "a ResNet needs Euler steps")):
        with pytest.raises(ValueError, match=message):
            parse_variant(bad, step=0.3 if bad == "resnet" else 0.05)
    net = build_variant("gode-m4-k1-clamped", width=8, stem="small", step=0.25)
    assert net.body[0].field.basis.n_basis == 4 and net.body[0].solver.step_size == 0.25
    assert count_parameters(build_variant("resnet", width=8, step=0.25)) > count_parameters(
        build_variant("node", width=8, step=0.25))
    # the paper's ResNet: standard blocks, each with its own GroupNorm and an unscaled branch
    six = build_variant("resnet6", width=8)
    assert parse_variant("resnet6")["n_blocks"] == 6 and len(six.body) == 6 and six.counter is None
    from nodelib.gode import kernel_path

    assert kernel_path(six) == [float(b.conv1.weight[0, 0, 1, 1]) for b in six.body]


@pytest.mark.slow  # over 10 s: the full suite runs it, the fast loop leaves it out
def test_gode_compare_records_paths_and_resumes_with_more_variants(tmp_path, capsys):
    import json

    from nodelib.experiments.__main__ import main

    common = ["run", "gode-mnist5k-compare", "--data", "mnist5k", "--train-size", "32", "--validation-size", "16",
              "--test-size", "16", "--epochs", "1", "--seeds", "0", "--width", "4", "--stem", "small", "--downsample",
              "2", "--step", "0.5", "--device", "cpu", "--no-progress", "--out", str(tmp_path)]
    assert main(common + ["--variants", "node"]) == 0
    out = tmp_path / "gode-mnist5k-compare" / "result.json"
    first = json.loads(out.read_text())
    assert first["complete"] and [r["variant"] for r in first["runs"]] == ["node"]
    assert first["data"] == {"train": 32, "validation": 16, "test": 16}
    run = first["runs"][0]
    assert len(run["initial_path"]) == len(run["trained_path"]) == 3 and run["nfe_forward"] == 2
    assert run["initial_roughness"] == 0.0  # a Neural ODE's weights do not vary with depth
    assert main(common + ["--variants", "node,gode-m2-k1-uniform", "--resume"]) == 0
    second = json.loads(out.read_text())
    assert [r["variant"] for r in second["runs"]] == ["node", "gode-m2-k1-uniform"]
    assert second["runs"][0] == first["runs"][0]  # the finished run is kept, not redone
    with pytest.raises(SystemExit):
        main(common + ["--variants", "node", "--resume", "--lr", "0.5"])
    assert "other settings (lr)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(common + ["--variants", "gode-m2-quadratic"])
    assert "unknown variant" in capsys.readouterr().err


# --- the GLM baseline of the GODE view: maximum likelihood and a ridge penalty chosen on validation ------------


def _glm_data(family, n=400, p=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=g, dtype=torch.float64)
    eta = 0.5 + x @ torch.linspace(-0.4, 0.4, p, dtype=torch.float64)
    if family == "poisson":
        y = torch.poisson(eta.exp(), generator=g)
    else:
        y = torch.bernoulli(torch.sigmoid(eta), generator=g)
    return x, y


@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.3])
def test_the_poisson_glm_is_scikit_learns_maximum_of_the_penalised_likelihood(alpha):
    from sklearn.linear_model import PoissonRegressor

    from nodelib.gode import fit_glm

    x, y = _glm_data("poisson")
    ours = fit_glm(x, y, "poisson", alpha)
    theirs = PoissonRegressor(alpha=alpha, tol=1e-12, max_iter=10_000).fit(x.numpy(), y.numpy())
    assert ours.converged and ours.iterations < 30
    np.testing.assert_allclose(ours.coef.numpy(), theirs.coef_, atol=1e-6)
    assert ours.intercept == pytest.approx(theirs.intercept_, abs=1e-6)
    # the score equations of the maximum: X^T (y - mu) = 0 (and the intercept's: sum(y - mu) = 0)
    if alpha == 0:
        residual = y - ours.mean(x)
        assert float(residual.sum().abs()) < 1e-6 and float((x.T @ residual).abs().max()) < 1e-6


def test_the_logistic_glm_is_scikit_learns_and_separable_data_do_not_converge():
    from sklearn.linear_model import LogisticRegression

    from nodelib.gode import fit_glm

    x, y = _glm_data("bernoulli")
    alpha = 0.05
    ours = fit_glm(x, y, "bernoulli", alpha)
    theirs = LogisticRegression(C=1 / (alpha * len(y)), tol=1e-12, max_iter=10_000).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(ours.coef.numpy(), theirs.coef_[0], atol=1e-6)
    separable = fit_glm(x, (x[:, 0] > 0).double(), "bernoulli", 0.0, max_iter=25)
    assert not separable.converged  # the maximum is at infinity
    assert fit_glm(x, (x[:, 0] > 0).double(), "bernoulli", 0.1).converged  # a penalty brings it back


def test_tuning_picks_the_penalty_with_the_best_validation_likelihood_and_names_bad_input():
    from nodelib.gode import fit_glm, tune_glm

    x, y = _glm_data("poisson", n=120, p=40)  # many covariates, few observations: the penalty should help
    xv, yv = _glm_data("poisson", n=2000, p=40, seed=1)
    chosen, path = tune_glm((x, y), (xv, yv), "poisson", alphas=[0.0, 1e-3, 1e-2, 1e-1, 1.0])
    scores = dict(path)
    assert chosen.alpha == min(scores, key=scores.get) and chosen.alpha > 0 and scores[chosen.alpha] < scores[0.0]
    with pytest.raises(ValueError, match="alpha must be"):
        fit_glm(x, y, "poisson", -1.0)
    with pytest.raises(ValueError, match="counts"):
        fit_glm(x, y - 0.5, "poisson")
    with pytest.raises(ValueError, match="one response per row"):
        fit_glm(x, y[:-1], "poisson")
