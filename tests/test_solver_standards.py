"""nodelib's solver core held to the standard of torchdiffeq's own test suite, for the features nodelib has.

Closed-form problems solved to tolerance by every method (float64 and float32, forwards and backwards in time),
float64 gradchecks of ``odeint`` (backpropagation) and of the adjoint for every method, fields that ignore the
state or the parameters, time gradients, single-time grids, half precision refused, the adjoint's backward norms
(mixed, seminorm, single RMS) and their route through ``SolverConfig``, and where the core keeps its errors and its
method list. The problems and checks are written for nodelib; torchdiffeq is used only as a second opinion.
"""
from __future__ import annotations

import math
import time

import pytest
import torch
import torchdiffeq
from torch import nn
from torch.autograd import gradcheck

from nodelib import odeint, odeint_adjoint, odeint_checkpointed
from nodelib.adjoint import AdjointStats

F64 = torch.float64
METHODS = ["euler", "midpoint", "rk4", "rk38", "dopri5"]
FIXED = ["euler", "midpoint", "rk4", "rk38"]
ORDER = {"euler": 1, "midpoint": 2, "rk4": 4, "rk38": 4, "dopri5": 5}
#: torchdiffeq's name for the same fixed-step method (its "rk4" is the 3/8 rule)
TORCHDIFFEQ_NAME = {"euler": "euler", "midpoint": "midpoint", "rk38": "rk4", "dopri5": "dopri5"}


# --- closed-form problems -----------------------------------------------------------------------------------

_g = torch.Generator().manual_seed(0)
_M = torch.randn(6, 6, generator=_g, dtype=F64)
LINEAR_A = (_M - _M.T) / 2 - 0.3 * torch.eye(6, dtype=F64)  # rotation plus uniform decay


def _growth(t, y):  # y' = cos(t) y: y(t) = y(t0) exp(sin t - sin t0)
    return torch.cos(t) * y


def _linear(t, y):  # y' = A y: y(t) = exp((t - t0) A) y(t0)
    return y @ LINEAR_A.to(y.dtype).T


def _logistic(t, y):  # y' = y (1 - y)
    return y * (1 - y)


def _cubic(t, y):  # y' = 3 t^2, ignoring the state: y(t) = y(t0) + t^3 - t0^3
    return 3 * t**2 * torch.ones_like(y)


PROBLEMS = {
    "growth": (_growth, lambda t, y0: y0[None] * torch.exp(torch.sin(t) - torch.sin(t[0]))[:, None],
               [0.5, -1.0, 2.0]),
    "linear": (_linear, lambda t, y0: torch.stack([torch.linalg.matrix_exp(LINEAR_A.to(y0.dtype) * (s - t[0])) @ y0
                                                   for s in t]),
               torch.randn(6, generator=_g, dtype=F64).tolist()),
    "logistic": (_logistic, lambda t, y0: 1 / (1 + (1 / y0[None] - 1) * torch.exp(-(t - t[0]))[:, None]),
                 [0.1, 0.5, 0.9]),
    "cubic": (_cubic, lambda t, y0: y0[None] + (t**3 - t[0] ** 3)[:, None], [1.0, -2.0]),
}
#: step sizes of the fixed-step methods and the relative error they must reach with them (about ten times what
#: they do reach on these problems, far below what a wrong coefficient or a stage at the wrong time gives)
FIXED_STEPS = {"euler": (1e-3, 1e-2), "midpoint": (1e-2, 1e-3), "rk4": (0.05, 1e-4), "rk38": (0.05, 1e-4)}


def _relative_error(ys, exact):
    return ((ys - exact).abs() / (1 + exact.abs())).max().item()


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_solves_every_closed_form_problem(problem, method):
    f, exact, y0 = PROBLEMS[problem]
    y0 = torch.tensor(y0, dtype=F64)
    t = torch.linspace(0.3, 2.3, 9, dtype=F64)  # outputs between steps: dense output and interpolation too
    reference = exact(t, y0)
    if method == "dopri5":
        for tol in (1e-4, 1e-7, 1e-10):
            assert _relative_error(odeint(f, y0, t, rtol=tol, atol=tol), reference) < 10 * tol
    else:
        h, bound = FIXED_STEPS[method]
        assert _relative_error(odeint(f, y0, t, method=method, step_size=h), reference) < bound
    # backwards in time from the end recovers every earlier output
    kw = dict(rtol=1e-10, atol=1e-10) if method == "dopri5" else dict(step_size=FIXED_STEPS[method][0])
    back = odeint(f, reference[-1], t.flip(0), method=method, **kw)
    bound = 1e-8 if method == "dopri5" else FIXED_STEPS[method][1]
    assert _relative_error(back, reference.flip(0)) < bound


@pytest.mark.parametrize("method", ["rk4", "rk38", "dopri5"])
def test_quadrature_of_a_cubic_is_exact_for_methods_of_order_four_and_more(method):
    # y' = 3 t^2 is a quadrature; Simpson-like weights integrate cubics exactly, whatever the step
    y0 = torch.tensor([1.0, -2.0], dtype=F64)
    t = torch.tensor([0.0, 0.5, 1.5, 2.0], dtype=F64)
    kw = {} if method == "dopri5" else dict(step_size=0.5)
    ys = odeint(_cubic, y0, t, method=method, **kw)
    torch.testing.assert_close(ys, PROBLEMS["cubic"][1](t, y0), rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", METHODS)
def test_float32_solutions_are_accurate_to_float32(method):
    f, exact, y0 = PROBLEMS["growth"]
    y0 = torch.tensor(y0, dtype=F64)
    t = torch.linspace(0.3, 2.3, 9, dtype=F64)
    kw = dict(rtol=1e-6, atol=1e-6) if method == "dopri5" else dict(step_size=FIXED_STEPS[method][0])
    ys = odeint(f, y0.float(), t.float(), method=method, **kw)
    assert ys.dtype == torch.float32
    bound = 2e-5 if method == "dopri5" else max(FIXED_STEPS[method][1], 2e-5)
    assert _relative_error(ys.double(), exact(t, y0)) < bound


def test_dopri5_dense_output_is_as_accurate_as_its_steps():
    f, exact, y0 = PROBLEMS["linear"]
    y0 = torch.tensor(y0, dtype=F64)
    t = torch.linspace(0.0, 5.0, 201, dtype=F64)
    for tol in (1e-5, 1e-8):
        assert _relative_error(odeint(f, y0, t, rtol=tol, atol=tol), exact(t, y0)) < 10 * tol


# --- gradients: float64 gradchecks for odeint and for the adjoint, every method ------------------------------

def _gradcheck_inputs(with_time: bool = True):
    g = torch.Generator().manual_seed(1)
    y0 = torch.randn(2, generator=g, dtype=F64).requires_grad_(True)
    w = (0.5 * torch.randn(2, 2, generator=g, dtype=F64)).requires_grad_(True)
    b = torch.randn(2, generator=g, dtype=F64).requires_grad_(True)
    t = torch.tensor([0.0, 0.1, 0.25, 0.4, 0.5], dtype=F64, requires_grad=with_time)
    return y0, t, w, b


def _field(w, b):
    return lambda t, y: torch.tanh(y @ w.T + t * b)  # depends on the state, the parameters and the time


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_backprop_through_odeint(method):
    """Backpropagation is the exact derivative of the computation, times included: without a step size the grid
    is t itself; dopri5's time gradient is the exact solution's, at a tolerance where the two coincide."""
    y0, t, w, b = _gradcheck_inputs()
    kw = dict(rtol=1e-12, atol=1e-12) if method == "dopri5" else {}
    assert gradcheck(lambda y0, t, w, b: odeint(_field(w, b), y0, t, method=method, **kw), (y0, t, w, b))


@pytest.mark.parametrize("method", FIXED)
def test_gradcheck_backprop_through_a_fixed_step_size_with_interpolated_outputs(method):
    y0, t, w, b = _gradcheck_inputs(with_time=False)  # step 0.07 puts every output inside a step
    assert gradcheck(lambda y0, w, b: odeint(_field(w, b), y0, t, method=method, step_size=0.07), (y0, w, b))
    assert gradcheck(lambda y0, w, b: odeint_checkpointed(_field(w, b), y0, t, method=method, step_size=0.07,
                                                          checkpoint_every=3), (y0, w, b))


#: the adjoint's backward solve is a second discretisation, so against finite differences of the forward solve
#: it agrees to the methods' error at these steps: step size and the gradcheck tolerance it allows
ADJOINT_STEPS = {"euler": (2e-3, 1e-2), "midpoint": (1e-2, 1e-3), "rk4": (0.05, 1e-5), "rk38": (0.05, 1e-5)}


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_the_adjoint(method):
    if method == "dopri5":  # at this tolerance the adjoint's gradient is the forward solve's, times included
        y0, t, w, b = _gradcheck_inputs()

        def solve(y0, t, w, b):
            return odeint_adjoint(_field(w, b), y0, t, rtol=1e-12, atol=1e-12, adjoint_params=(w, b))

        # fast mode: finite differences along random directions against the same projections of the adjoint's
        # Jacobian (two solves in each direction and one backward pass instead of one per output)
        assert gradcheck(solve, (y0, t, w, b), fast_mode=True)
        return
    h, tol = ADJOINT_STEPS[method]
    y0, t, w, b = _gradcheck_inputs(with_time=False)

    def solve_fixed(y0, w, b):
        return odeint_adjoint(_field(w, b), y0, t, method=method, step_size=h, adjoint_params=(w, b))

    assert gradcheck(solve_fixed, (y0, w, b), atol=tol, rtol=tol, fast_mode=method == "euler")


@pytest.mark.parametrize("method", FIXED)
def test_fixed_step_adjoint_converges_to_the_exact_gradient_at_the_methods_order(method):
    """A wrong term would leave an error that does not shrink with the step; the adjoint's error against the
    exact gradient (dopri5 at 1e-12) falls like h**p."""
    y0, t, w, b = _gradcheck_inputs(with_time=False)
    weights = torch.linspace(-1.0, 1.0, 10, dtype=F64).reshape(5, 2)

    def grads(**kw):
        ys = odeint_adjoint(_field(w, b), y0, t, adjoint_params=(w, b), **kw)
        return torch.cat([g.flatten() for g in torch.autograd.grad((weights * ys).sum(), (y0, w, b))])

    exact = grads(rtol=1e-12, atol=1e-12)
    hs = [0.05, 0.025]  # the outputs fall on the grid: no interpolation error (first order) hides the method's
    errors = [(grads(method=method, step_size=h) - exact).norm().item() for h in hs]
    observed = math.log2(errors[0] / errors[1])
    assert abs(observed - ORDER[method]) < 0.35, (errors, observed)


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk38"])
def test_fixed_step_adjoint_is_torchdiffeqs_to_round_off(method):
    """Same grid forwards and backwards, the same restarts: the two adjoints are the same computation."""
    y0, t, w, b = _gradcheck_inputs(with_time=False)

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.b = nn.Parameter(w.detach().clone()), nn.Parameter(b.detach().clone())

        def forward(self, s, y):
            return torch.tanh(y @ self.w.T + s * self.b)

    field = Field()
    weights = torch.linspace(-1.0, 1.0, 10, dtype=F64).reshape(5, 2)
    results = []
    for solve in (lambda y: odeint_adjoint(field, y, t, method=method, step_size=0.05),
                  lambda y: torchdiffeq.odeint_adjoint(field, y, t, method=TORCHDIFFEQ_NAME[method],
                                                       options={"step_size": 0.05})):
        y = y0.detach().requires_grad_(True)
        grads = torch.autograd.grad((weights * solve(y)).sum(), (y, field.w, field.b))
        results.append(torch.cat([g.flatten() for g in grads]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-11, atol=1e-13)


# --- time gradients against the closed form, every method, backprop and adjoint ----------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("gradient", ["backprop", "adjoint"])
def test_time_gradients_match_the_closed_form(method, gradient):
    """y' = cos(t) y: y(t1) = y0 exp(sin t1 - sin t0), so dL/dt1 = cos(t1) L, dL/dt0 = -cos(t0) L, dL/dy0 = L / y0
    for L = sum y(t1)."""
    y0 = torch.tensor([0.5, -1.0, 2.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.3, 1.7], dtype=F64, requires_grad=True)
    solve = odeint if gradient == "backprop" else odeint_adjoint
    kw = dict(rtol=1e-11, atol=1e-11) if method == "dopri5" else dict(step_size=FIXED_STEPS[method][0])
    if gradient == "adjoint":
        kw["adjoint_params"] = ()
    solve(_growth, y0, t, method=method, **kw)[-1].sum().backward()
    factor = math.exp(math.sin(1.7) - math.sin(0.3))
    total = float(y0.detach().sum()) * factor
    bound = 1e-8 if method == "dopri5" else FIXED_STEPS[method][1]
    torch.testing.assert_close(t.grad, torch.tensor([-math.cos(0.3) * total, math.cos(1.7) * total], dtype=F64),
                               rtol=bound, atol=bound)
    torch.testing.assert_close(y0.grad, torch.full((3,), factor, dtype=F64), rtol=bound, atol=bound)


def test_dopri5_time_gradient_with_several_observations_matches_the_adjoint_and_torchdiffeq():
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(0)  # the field's initialisation: its smallest time gradient is 0.06 (bound below: 1e-3)
    field = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    func = lambda t, y: field(y) * torch.cos(t)  # noqa: E731
    y0 = torch.randn(4, 2, generator=g, dtype=F64)
    weights = torch.randn(4, 4, 2, generator=g, dtype=F64)

    def time_grad(solve):
        t = torch.tensor([0.0, 0.3, 0.8, 1.2], dtype=F64, requires_grad=True)
        (weights * solve(t)).sum().backward()
        return t.grad

    tight = dict(rtol=1e-11, atol=1e-11)
    ours = time_grad(lambda t: odeint(func, y0, t, **tight))
    adjoint = time_grad(lambda t: odeint_adjoint(func, y0, t, adjoint_params=tuple(field.parameters()), **tight))
    their_adjoint = time_grad(lambda t: torchdiffeq.odeint_adjoint(func, y0, t, adjoint_params=tuple(field.parameters()),
                                                                     **tight))
    their_backprop = time_grad(lambda t: torchdiffeq.odeint(func, y0, t, **tight))
    torch.testing.assert_close(ours, adjoint, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ours, their_adjoint, rtol=1e-9, atol=1e-10)
    # torchdiffeq's backpropagation also differentiates its step-size controller: it converges more slowly
    torch.testing.assert_close(ours, their_backprop, rtol=1e-6, atol=1e-8)
    assert ours.abs().min() > 1e-3  # every time gets a gradient


# --- fields that ignore the state or the parameters: zero vector-Jacobian products -------------------------

class TimeOnly(nn.Module):
    """y' = theta * cos(t) (or cos(t) alone): the field reads neither the state nor, optionally, its parameter;
    an unused parameter rides along."""

    def __init__(self, use_theta: bool):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(1.5, dtype=F64))
        self.unused = nn.Parameter(torch.ones(3, dtype=F64))
        self.use_theta = use_theta

    def forward(self, t, y):
        rate = torch.cos(t) * torch.ones_like(y)
        return self.theta * rate if self.use_theta else rate


class StateOnly(nn.Module):
    """y' = -y: depends on the state, not on its (unused) parameter."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.ones(2, dtype=F64))

    def forward(self, t, y):
        return -y


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("use_theta", [False, True])
def test_adjoint_of_a_field_that_ignores_the_state(method, use_theta):
    field = TimeOnly(use_theta)
    y0 = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.2, 1.0, 1.4], dtype=F64, requires_grad=True)
    kw = {} if method == "dopri5" else dict(step_size=0.01)
    ys = odeint_adjoint(field, y0, t, method=method, **kw)
    (ys[1].sum() + 2 * ys[2].sum()).backward()
    theta = 1.5 if use_theta else 1.0
    n = 2  # state entries
    torch.testing.assert_close(y0.grad, torch.full((2,), 3.0, dtype=F64))
    expected_t = torch.tensor([-3 * n * theta * math.cos(0.2), n * theta * math.cos(1.0), 2 * n * theta * math.cos(1.4)],
                              dtype=F64)
    torch.testing.assert_close(t.grad, expected_t, rtol=1e-9, atol=1e-12)
    if use_theta:  # dL/dtheta = n (sin 1.0 - sin 0.2) + 2 n (sin 1.4 - sin 0.2), a quadrature the method may miss
        expected = n * (math.sin(1.0) - math.sin(0.2)) + 2 * n * (math.sin(1.4) - math.sin(0.2))
        bound = {"euler": 1e-2, "midpoint": 1e-4}.get(method, 1e-6)  # a quadrature of order 1, 2, 4 or 5 at h = 0.01
        assert field.theta.grad.item() == pytest.approx(expected, rel=bound)
    else:
        assert field.theta.grad.item() == 0.0
    assert torch.equal(field.unused.grad, torch.zeros(3, dtype=F64))


@pytest.mark.parametrize("method", METHODS)
def test_adjoint_of_a_field_that_ignores_its_parameters_matches_torchdiffeq(method):
    field = StateOnly()
    y0 = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    kw = dict(rtol=1e-10, atol=1e-10) if method == "dopri5" else dict(step_size=0.01)
    odeint_adjoint(field, y0, t, method=method, **kw).pow(2).sum().backward()
    ours = y0.grad.clone()
    y0.grad = None
    options = None if method == "dopri5" else {"step_size": 0.01}
    theirs_method = TORCHDIFFEQ_NAME.get(method, method)  # nodelib's classical rk4 against the 3/8 rule: both order 4
    torchdiffeq.odeint_adjoint(field, y0, t, method=theirs_method, options=options,
                               **({"rtol": 1e-10, "atol": 1e-10} if method == "dopri5" else {})).pow(2).sum().backward()
    # exact: L = sum_i |y0|^2 exp(-2 t_i)  =>  dL/dy0 = 2 y0 sum_i exp(-2 t_i)
    exact = 2 * y0.detach() * sum(math.exp(-2 * s) for s in (0.0, 0.5, 1.0))
    bound = 1e-8 if method == "dopri5" else 10 * 0.01 ** ORDER[method]
    torch.testing.assert_close(ours, exact, rtol=bound, atol=bound)
    torch.testing.assert_close(ours, y0.grad, rtol=bound, atol=bound)
    assert torch.equal(field.unused.grad, torch.zeros(2, dtype=F64))


# --- single-time grids, half precision -----------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_a_single_time_returns_y0_as_torchdiffeq_does(method):
    y0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    t = torch.tensor([0.5], dtype=F64)
    kw = {} if method == "dopri5" else dict(step_size=0.1)
    ys, stats = odeint(_growth, y0, t, method=method, return_stats=True, **kw)
    theirs = torchdiffeq.odeint(_growth, y0, t, method=TORCHDIFFEQ_NAME.get(method, method),
                                options=None if method == "dopri5" else {"step_size": 0.1})
    assert ys.shape == theirs.shape == (1, 2) and torch.equal(ys, theirs) and torch.equal(ys[0], y0)
    assert ys.data_ptr() != y0.data_ptr()  # a copy, as torchdiffeq's, not a view of the input
    assert stats.nfe == 0 and stats.n_steps == 0
    (g,) = torch.autograd.grad(ys.sum(), y0)
    assert torch.equal(g, torch.ones(2, dtype=F64))
    adjoint = odeint_adjoint(_growth, y0, t, method=method, adjoint_params=(), **kw)
    assert torch.equal(adjoint, ys) and adjoint.data_ptr() != y0.data_ptr()
    (g,) = torch.autograd.grad((3 * adjoint).sum(), y0)
    assert torch.equal(g, torch.full((2,), 3.0, dtype=F64))
    pair = odeint(lambda s, y: (y[0], -y[1]), (y0, 2 * y0), t, method=method, **kw)
    assert [p.shape for p in pair] == [(1, 2), (1, 2)] and torch.equal(pair[1][0], 2 * y0)
    if method != "dopri5":
        assert torch.equal(odeint_checkpointed(_growth, y0, t, method=method, step_size=0.1), ys)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_refused_at_once_with_a_clear_message(dtype):
    y0 = torch.ones(2, dtype=dtype)
    start = time.perf_counter()
    for solve in (lambda: odeint(_growth, y0, [0.0, 1.0]),
                  lambda: odeint(_growth, y0, [0.0, 1.0], method="rk4", step_size=0.1),
                  lambda: odeint_adjoint(_growth, y0, [0.0, 1.0], adjoint_params=()),
                  lambda: odeint_checkpointed(_growth, y0, [0.0, 1.0], method="euler", step_size=0.1),
                  lambda: odeint(lambda t, y: y, (torch.ones(2), y0), [0.0, 1.0])):
        with pytest.raises(TypeError, match=f"is {dtype}: nodelib's solvers work in float32 or float64 only"):
            solve()
    assert time.perf_counter() - start < 1.0  # no solve was attempted


def test_a_nan_step_size_stops_dopri5_at_once():
    from nodelib._impl.dopri5 import integrate_dopri5
    from nodelib.solvers import SolveStats

    stats = SolveStats("dopri5")
    with pytest.raises(FloatingPointError, match="step size became NaN"):
        integrate_dopri5(_growth, torch.ones(2, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), 1e-6, 1e-6,
                         100_000, float("nan"), stats)
    assert stats.n_steps + stats.n_rejected == 0


def test_a_fixed_step_blow_up_is_reported_with_where_it_happened():
    # y -> -499 y per step overflows float64 after 114 steps; the state is checked every 32 steps
    with pytest.raises(FloatingPointError,
                       match=r"infinite between t=48 and t=64, in euler steps 97 to 128 \(step size 0\.5\)\. .* unstable"):
        odeint(lambda t, y: -1e3 * y, torch.ones(1, dtype=F64), [0.0, 100.0], method="euler", step_size=0.5)


# --- the fast fixed step is the readable one, to round-off ---------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("name", METHODS)
def test_fast_step_is_the_readable_step_bit_for_bit(name, dtype):
    from nodelib._impl.rk import rk_step, rk_step_fast
    from nodelib.solvers import TABLEAUS

    g = torch.Generator().manual_seed(0)
    y = torch.randn(5, 3, generator=g, dtype=dtype)
    t0 = torch.tensor(0.3, dtype=dtype)
    for h in (0.17, -0.1, 1 / 3):
        h_tensor = torch.tensor(h, dtype=dtype)
        a, ks_a = rk_step(_growth, TABLEAUS[name], t0, y, h_tensor)
        scaled = (h_tensor * TABLEAUS[name].plan.vector(dtype, y.device)).unbind()
        b, ks_b = rk_step_fast(_growth, TABLEAUS[name], t0, y, scaled)
        assert torch.equal(a, b) and len(ks_a) == len(ks_b) == TABLEAUS[name].stages
        assert all(torch.equal(p, q) for p, q in zip(ks_a, ks_b))


# --- the adjoint's backward norms ------------------------------------------------------------------------------

def test_norm_functions_measure_each_part_on_its_own():
    from nodelib._impl.structure import max_rms_norm
    from nodelib.adjoint import augmented_norm

    x = torch.cat([torch.full((2,), 3.0), torch.zeros(998)])  # a small part with a large error, a large quiet one
    assert max_rms_norm([2, 998])(x).item() == pytest.approx(3.0)
    assert max_rms_norm([2, 998], measured=1)(x).item() == pytest.approx(3.0)
    assert max_rms_norm([2, 998], measured=1)(torch.cat([torch.zeros(2), torch.ones(998)])).item() == 0.0
    assert max_rms_norm([0, 2, 0, 998])(x).item() == pytest.approx(3.0)  # empty parts are skipped
    # augmented state [z (a tuple of parts 3 and 1), a (the same), gradients of two parameters (4 and 6)]
    aug = torch.zeros(3 + 1 + 3 + 1 + 4 + 6)
    aug[3] = 2.0  # z's second part
    aug[-1] = 5.0  # the second parameter's gradient
    assert augmented_norm("mixed", [3, 1], [4, 6])(aug).item() == pytest.approx(5.0 / math.sqrt(6))
    assert augmented_norm("seminorm", [3, 1], [4, 6])(aug).item() == pytest.approx(2.0)
    assert augmented_norm("rms", [3, 1], [4, 6]) is None  # the solvers' plain RMS over the whole vector
    with pytest.raises(ValueError, match="at least one part"):
        max_rms_norm([0, 0])


class Oscillating(nn.Module):
    """sin(20 t) * tanh(W2 tanh(W1 x + b1) + b2), the wide-network case of chapter 2 and the issue."""

    def __init__(self, width: int):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 2), nn.Tanh()).double()

    def forward(self, t, x):
        return self.net(x) * torch.sin(20 * t)


def test_backward_norms_on_a_wide_network():
    """Width 256 (1,282 parameters), rtol = atol = 1e-6: the mixed norm is the most accurate of the three on the
    parameter gradients; the seminorm spends the fewest backward evaluations; every one stays near tolerance."""
    field = Oscillating(256)
    x0 = torch.tensor([1.0, 2.0], dtype=F64)
    t = torch.tensor([0.0, 1.0], dtype=F64)

    def grads(solve):
        x = x0.clone().requires_grad_(True)
        g = torch.autograd.grad(solve(x)[-1].sum(), [x, *field.parameters()])
        return torch.cat([q.flatten() for q in g])

    reference = grads(lambda x: odeint(field, x, t, rtol=1e-12, atol=1e-12))
    error, nfe = {}, {}
    for norm in ("mixed", "seminorm", "rms"):
        stats = AdjointStats()
        g = grads(lambda x: odeint_adjoint(field, x, t, rtol=1e-6, atol=1e-6, adjoint_norm=norm, stats=stats))
        error[norm], nfe[norm] = ((g - reference).norm() / reference.norm()).item(), stats.backward_nfe
    assert error["mixed"] < error["rms"] / 2 and error["mixed"] < error["seminorm"] / 2
    assert nfe["seminorm"] < 0.8 * nfe["mixed"] and nfe["seminorm"] < nfe["rms"]
    assert max(error.values()) < 1e-4
    # the default is the mixed norm; torchdiffeq's spelling selects the same norm: the same steps, the same gradient
    stats = AdjointStats()
    odeint_adjoint(field, x0.clone().requires_grad_(True), t, rtol=1e-6, atol=1e-6, stats=stats)[-1].sum().backward()
    assert stats.backward_nfe == nfe["mixed"]
    stats = AdjointStats()
    g = grads(lambda x: odeint_adjoint(field, x, t, rtol=1e-6, atol=1e-6, adjoint_options={"norm": "seminorm"},
                                       stats=stats))
    assert stats.backward_nfe == nfe["seminorm"]
    assert ((g - reference).norm() / reference.norm()).item() == pytest.approx(error["seminorm"], rel=1e-6)


def test_bad_or_conflicting_norm_names_are_refused():
    with pytest.raises(ValueError, match="must be one of"):
        odeint_adjoint(_growth, torch.ones(2), [0.0, 1.0], adjoint_params=(), adjoint_norm="l2")
    with pytest.raises(ValueError, match="disagree"):
        odeint_adjoint(_growth, torch.ones(2), [0.0, 1.0], adjoint_params=(), adjoint_norm="mixed",
                       adjoint_options={"norm": "seminorm"})
    from nodelib import SolverConfig

    with pytest.raises(ValueError, match="adjoint_norm must be one of"):
        SolverConfig(adjoint_norm="max")


@pytest.mark.parametrize("backend", ["nodelib", "torchdiffeq"])
def test_solver_config_takes_the_norm_to_an_ode_block(backend):
    from nodelib import ODEBlock, SolverConfig

    field = Oscillating(64)
    x0 = torch.tensor([[1.0, 2.0]], dtype=F64)
    backward = {}
    for norm in ("mixed", "seminorm", "rms"):
        block = ODEBlock(field, 0.0, 1.0, SolverConfig(rtol=1e-6, atol=1e-6, backend=backend, gradient="adjoint",
                                                       adjoint_norm=norm))
        block.reset_nfe()
        out = block(x0)
        forward = block.nfe
        out.sum().backward()
        backward[norm] = block.nfe - forward
    assert all(n > 0 for n in backward.values())
    if backend == "nodelib":
        assert backward["seminorm"] < backward["mixed"]
    cfg = SolverConfig.from_mapping({"adjoint": True, "adjoint_options": {"norm": "seminorm"}})
    assert cfg.adjoint_norm == "seminorm"
    assert cfg.torchdiffeq_adjoint_kwargs()["adjoint_options"]["norm"] == "seminorm"
    assert "norm" not in SolverConfig(gradient="adjoint").torchdiffeq_adjoint_kwargs()["adjoint_options"]
    assert callable(SolverConfig(adjoint_norm="rms").torchdiffeq_adjoint_kwargs()["adjoint_options"]["norm"])
    assert SolverConfig(adjoint_norm="seminorm").nodelib_adjoint_kwargs()["adjoint_norm"] == "seminorm"


# --- where the core keeps things: errors, method lists, the positive-number check ---------------------------

def test_every_solver_error_lives_in_one_module_and_is_exported():
    import nodelib
    import nodelib._impl.dopri5
    import nodelib.errors
    import nodelib.solvers

    for name in ("SolverError", "StepBudgetExceeded", "StepSizeUnderflow"):
        cls = getattr(nodelib.errors, name)
        assert cls.__module__ == "nodelib.errors" and issubclass(cls, RuntimeError)
        assert getattr(nodelib, name) is cls and getattr(nodelib.solvers, name) is cls and name in nodelib.__all__
    assert issubclass(nodelib.StepBudgetExceeded, nodelib.SolverError)
    assert issubclass(nodelib.StepSizeUnderflow, nodelib.SolverError)
    assert nodelib._impl.dopri5.StepBudgetExceeded is nodelib.StepBudgetExceeded  # the old import path works
    for name in ("odeint", "odeint_adjoint", "odeint_checkpointed", "ODEBlock", "SolverConfig", "SolveStats",
                 "seed_everything"):
        assert hasattr(nodelib, name) and name in nodelib.__all__


def test_the_method_lists_are_defined_once_and_follow_torchdiffeq():
    from torchdiffeq._impl.odeint import SOLVERS
    from torchdiffeq._impl.solvers import FixedGridODESolver

    import nodelib.config
    import nodelib.solvers
    from nodelib._impl import methods

    assert nodelib.config.FIXED_METHODS is methods.FIXED_METHODS
    assert nodelib.solvers.FIXED_STEP_METHODS is methods.FIXED_STEP_METHODS
    assert nodelib.solvers.TABLEAUS is methods.TABLEAUS
    theirs = {name for name, cls in SOLVERS.items() if isinstance(cls, type) and issubclass(cls, FixedGridODESolver)}
    assert set(methods.TORCHDIFFEQ_FIXED_STEP_METHODS) == theirs
    assert set(methods.FIXED_METHODS) == theirs | set(methods.FIXED_STEP_METHODS)
    assert not set(methods.FIXED_METHODS) & set(methods.ADAPTIVE_METHODS)


def test_one_positive_number_check_serves_solvers_and_config():
    import nodelib.config
    from nodelib import SolverConfig

    assert not hasattr(nodelib.config, "_positive")
    for bad in (0.0, -1e-6, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rtol must be a positive finite number"):
            SolverConfig(rtol=bad)
        with pytest.raises(ValueError, match="rtol must be a positive finite number"):
            odeint(_growth, torch.ones(2), [0.0, 1.0], rtol=bad)
    with pytest.raises(TypeError, match="step_size must be a positive number, got str"):
        SolverConfig(method="rk4", step_size="0.1")


# --- the recorded experiments behind chapter 2's section and the speed claim ---------------------------------

def test_recorded_adjoint_norms_hold_what_chapter_two_says():
    import statistics

    from nodelib.experiments import load_result
    from nodelib.experiments.adjoint_norms import VARIANTS

    record = load_result("adjoint_norms_cpu")
    assert record["experiment"] == "adjoint_norms" and "+dirty" not in record["machine"]["revision"]
    widths, seeds = record["config"]["widths"], record["config"]["seeds"]
    assert sorted((r["width"], r["seed"], r["variant"]) for r in record["rows"]) == sorted(
        (w, s, v) for w in widths for s in seeds for v in VARIANTS)
    assert max(r["error_all"] for r in record["references"]) < 1e-8  # the reference does not limit the errors

    def median(variant, key, width):
        return statistics.median(r[key] for r in record["rows"] if r["variant"] == variant and r["width"] == width)

    for w in widths:
        mixed, rms, semi = (median(f"nodelib {n}", "error_all", w) for n in ("mixed", "rms", "seminorm"))
        assert 2.5 * mixed < rms < semi  # "three to six times more accurate"; the seminorm least accurate
        assert median("nodelib seminorm", "backward_nfe", w) < 0.8 * median("nodelib mixed", "backward_nfe", w)
        assert median("nodelib mixed", "backward_nfe", w) < 1.3 * median("nodelib rms", "backward_nfe", w)
        assert mixed < median("torchdiffeq", "error_all", w) < rms  # torchdiffeq between the two
        assert median("torchdiffeq seminorm", "backward_nfe", w) >= median("torchdiffeq", "backward_nfe", w)
    assert median("nodelib rms", "error_all", widths[-1]) > 10 * median("nodelib rms", "error_all", widths[0])


def test_recorded_fixed_step_speed_is_not_slower_than_torchdiffeq():
    from nodelib.experiments import load_result

    record = load_result("solver_speed_cpu")
    assert record["experiment"] == "solver_speed" and "+dirty" not in record["machine"]["revision"]
    assert not record["config"]["smoke"] and record["config"]["threads"] == 1
    rows = {(r["method"], r["mode"]): r for r in record["rows"]}
    assert set(rows) == {(m, mode) for m in ("euler", "midpoint", "rk4", "rk38")
                         for mode in ("forward", "forward+backward")}
    for r in rows.values():
        assert r["ratio"] < 1.0, r  # nodelib's median time per step below torchdiffeq's, side by side


def test_solver_speed_smoke_prints_the_ratios_side_by_side(tmp_path, capsys):
    import json

    from nodelib.experiments import registry
    from nodelib.experiments.base import Context

    experiment = registry.get("solver-speed")
    experiment.run(experiment.configuration(smoke=True, methods=("euler", "rk38")),
                   Context(out=tmp_path, device="cpu", progress=False))
    printed = capsys.readouterr().out
    assert "nodelib us/step" in printed and "torchdiffeq us/step" in printed and "ratio" in printed
    rows = json.loads((tmp_path / "result.json").read_text())["rows"]
    assert [(r["method"], r["mode"]) for r in rows] == [
        ("euler", "forward"), ("euler", "forward+backward"), ("rk38", "forward"), ("rk38", "forward+backward")]
    assert all(r["nfe_per_solve"] == {"euler": 10, "rk38": 40}[r["method"]] and r["ratio"] > 0 for r in rows)
    with pytest.raises(ValueError, match="methods must be among"):
        experiment.configuration(methods=("dopri5",))
