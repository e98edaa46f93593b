"""nodelib.solvers (chapter 1): accuracy, orders, agreement with torchdiffeq, and clear errors."""
from __future__ import annotations

import math

import pytest
import torch
import torchdiffeq

from nodelib import StepBudgetExceeded, odeint
from nodelib._impl.rk import DOPRI5, DOPRI5_MID, EULER, MIDPOINT, RK4, RK38, quartic_interpolant
from nodelib.solvers import FIXED_STEP_METHODS, estimate_order, fixed_step_count

F64 = torch.float64
A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=F64)  # the spiral of seed 003, section 4.3.2
Y0 = torch.tensor([2.0, 0.0], dtype=F64)


def spiral(t, y):
    return y @ A.T


def exact(t):
    return torch.stack([torch.linalg.matrix_exp(A * s) @ Y0 for s in torch.as_tensor(t, dtype=F64)])


class Counter:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, t, y):
        self.n += 1
        return self.f(t, y)


# --- the tableaus are consistent methods of the stated order --------------------------------------------


@pytest.mark.parametrize("tb", [EULER, MIDPOINT, RK4, RK38, DOPRI5])
def test_tableau_row_sums_and_weights(tb):
    for c_i, row in zip(tb.c, tb.a):
        assert sum(row) == c_i  # exact fractions
    assert sum(tb.b) == 1
    if tb.b_hat is not None:
        assert sum(tb.b_hat) == 1


def test_dopri5_midpoint_weights_reproduce_a_quartic():
    # The mid-step weights are a fourth-order formula, so they integrate y' = 4 t^3 (y = t^4) exactly.
    f = lambda t, y: 4 * t**3 * torch.ones_like(y)
    y0 = torch.zeros(1, dtype=F64)
    h = torch.tensor(1.0, dtype=F64)
    from nodelib._impl.rk import combine, rk_step

    _, ks = rk_step(f, DOPRI5, torch.tensor(0.0, dtype=F64), y0, h)
    y_mid = combine(y0, h, DOPRI5_MID, ks)
    assert torch.allclose(y_mid, torch.tensor([0.5**4], dtype=F64), atol=1e-14)


def test_quartic_interpolant_meets_its_five_conditions():
    g = torch.Generator().manual_seed(0)
    y0, y1, ym, f0, f1 = (torch.randn(3, generator=g, dtype=F64) for _ in range(5))
    h = torch.tensor(0.7, dtype=F64)
    p = lambda th: quartic_interpolant(y0, y1, ym, f0, f1, h, torch.tensor(th, dtype=F64))
    assert torch.allclose(p(0.0), y0) and torch.allclose(p(1.0), y1) and torch.allclose(p(0.5), ym)
    eps = 1e-6  # central differences for the end slopes
    assert torch.allclose((p(eps) - p(-eps)) / (2 * eps), h * f0, atol=1e-6)
    assert torch.allclose((p(1 + eps) - p(1 - eps)) / (2 * eps), h * f1, atol=1e-6)


# --- orders of convergence ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("rk4", 4), ("rk38", 4)])
def test_fixed_step_order(method, order):
    T = 1.0
    hs = [0.02, 0.01, 0.005, 0.0025] if order < 4 else [0.1, 0.05, 0.025, 0.0125]
    errs = []
    for h in hs:
        ys = odeint(spiral, Y0, torch.tensor([0.0, T], dtype=F64), method=method, step_size=h)
        errs.append((ys[-1] - exact([T])[0]).norm().item())
    assert abs(estimate_order(hs, errs) - order) < 0.1


def test_dopri5_error_tracks_tolerance_and_order_is_about_five():
    T = 5.0
    hs, errs = [], []
    for tol in [1e-5, 1e-6, 1e-7, 1e-8, 1e-9]:
        ys, st = odeint(spiral, Y0, torch.tensor([0.0, T], dtype=F64), rtol=tol, atol=tol, return_stats=True)
        err = (ys[-1] - exact([T])[0]).norm().item()
        assert err < 100 * tol
        hs.append(T / st.n_steps)
        errs.append(err)
    assert 4.5 < estimate_order(hs, errs) < 6.0


def test_estimate_order_recovers_a_power_law_and_rejects_bad_input():
    hs = [0.1, 0.05, 0.025]
    assert estimate_order(hs, [3 * h**3 for h in hs]) == pytest.approx(3.0)
    assert estimate_order(hs[:2], [h**2 for h in hs[:2]]) == pytest.approx(2.0)  # two points make a line
    with pytest.raises(ValueError, match=r"^step sizes and errors must be positive to be compared on a log scale$"):
        estimate_order(hs, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="equal length"):
        estimate_order(hs, [1.0])


# --- agreement with torchdiffeq -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ours,theirs,tol",
    [("euler", "euler", 0.0), ("midpoint", "midpoint", 0.0), ("rk38", "rk4", 1e-13), ("rk4", "rk4", 1e-5)],
)
@pytest.mark.parametrize("step_size", [0.05, 0.1, 0.3, None])
def test_fixed_step_trajectories_and_step_counts_match_torchdiffeq(ours, theirs, tol, step_size):
    t = torch.linspace(0.0, 3.0, 7, dtype=F64)  # 0.5 apart: 0.3 does not divide it, so interpolation is used
    ours_f, theirs_f = Counter(spiral), Counter(spiral)
    ys, st = odeint(ours_f, Y0, t, method=ours, step_size=step_size, return_stats=True)
    options = None if step_size is None else {"step_size": step_size}
    ref = torchdiffeq.odeint(theirs_f, Y0, t, method=theirs, options=options)
    assert ys.shape == ref.shape == (7, 2)
    assert (ys - ref).abs().max().item() <= tol
    assert st.n_steps == fixed_step_count(t, step_size)
    assert ours_f.n == theirs_f.n == st.nfe  # the same number of steps, hence of evaluations


def test_dopri5_trajectory_matches_torchdiffeq_and_exact_solution():
    t = torch.linspace(0.0, 10.0, 41, dtype=F64)
    ours = odeint(spiral, Y0, t, rtol=1e-9, atol=1e-11)
    theirs = torchdiffeq.odeint(spiral, Y0, t, rtol=1e-9, atol=1e-11)
    assert (ours - exact(t)).abs().max() < 1e-8
    assert (ours - theirs).abs().max() < 1e-8


def test_dense_output_does_not_change_the_steps():
    # Dopri5 fills in requested times by interpolation, so asking for more output costs no extra steps.
    _, coarse = odeint(spiral, Y0, torch.tensor([0.0, 5.0], dtype=F64), return_stats=True)
    ys, fine = odeint(spiral, Y0, torch.linspace(0.0, 5.0, 501, dtype=F64), return_stats=True)
    assert fine.nfe == coarse.nfe
    assert (ys - exact(torch.linspace(0.0, 5.0, 501, dtype=F64))).abs().max() < 1e-6


def test_options_dict_as_in_torchdiffeq():
    t = torch.tensor([0.0, 1.0], dtype=F64)
    a = odeint(spiral, Y0, t, method="rk4", options={"step_size": 0.1})
    b = odeint(spiral, Y0, t, method="rk4", step_size=0.1)
    assert torch.equal(a, b)


# --- shapes, directions, dtypes, autograd -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["euler", "rk4", "dopri5"])
def test_any_state_shape(method):
    y0 = torch.randn(3, 4, 5, dtype=F64)
    decay = lambda t, y: -y
    ys = odeint(decay, y0, torch.tensor([0.0, 0.5, 1.0], dtype=F64), method=method, step_size=None if method == "dopri5" else 1e-3)
    assert ys.shape == (3, 3, 4, 5)
    assert torch.allclose(ys[-1], y0 * math.exp(-1.0), rtol=1e-3)


@pytest.mark.parametrize("method,kw", [("rk4", {"step_size": 0.01}), ("dopri5", {})])
def test_backwards_in_time_recovers_the_start(method, kw):
    T = 2.0
    yT = exact([T])[0]
    ys = odeint(spiral, yT, torch.tensor([T, 1.0, 0.0], dtype=F64), method=method, **kw)
    assert (ys[-1] - Y0).norm() < 1e-6
    assert (ys[1] - exact([1.0])[0]).norm() < 1e-6


def test_float32_works_and_time_is_cast_to_the_state_dtype():
    ys = odeint(lambda t, y: -y, torch.ones(2), [0.0, 1.0], method="rk4", step_size=0.1)
    assert ys.dtype == torch.float32
    assert torch.allclose(ys[-1], torch.full((2,), math.exp(-1.0)), rtol=1e-5)


@pytest.mark.parametrize("method", ["euler", "rk4", "dopri5"])
def test_gradients_flow_through_the_solver(method):
    # d/da of y(1) for y' = a y, y(0) = 1 is exp(a); backprop through the discrete solve approximates it.
    a = torch.tensor(0.7, dtype=F64, requires_grad=True)
    kw = {"step_size": 1e-3} if method != "dopri5" else {"rtol": 1e-10, "atol": 1e-12}
    y1 = odeint(lambda t, y: a * y, torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), method=method, **kw)[-1]
    y1.sum().backward()
    tol = 1e-3 if method == "euler" else 1e-7
    assert a.grad.item() == pytest.approx(math.exp(0.7), rel=tol)


def test_stats_count_steps_and_evaluations():
    _, st = odeint(spiral, Y0, torch.tensor([0.0, 1.0], dtype=F64), method="rk4", step_size=0.25, return_stats=True)
    assert (st.n_steps, st.nfe, st.n_rejected) == (4, 16, 0)
    assert st.step_sizes == [0.25] * 4 and st.step_starts == [0.0, 0.25, 0.5, 0.75]
    _, st = odeint(spiral, Y0, torch.tensor([0.0, 1.0], dtype=F64), return_stats=True)
    # dopri5: f(t0), one more evaluation to choose the first step, then 6 per step tried (FSAL)
    assert st.nfe == 2 + 6 * (st.n_steps + st.n_rejected)
    _, st = odeint(spiral, Y0, torch.tensor([0.0, 1.0], dtype=F64), options={"first_step": 0.1}, return_stats=True)
    assert st.nfe == 1 + 6 * (st.n_steps + st.n_rejected)


# --- bad input gets a clear error ----------------------------------------------------------------------------


def _t(*v):
    return torch.tensor(v, dtype=F64)


def test_a_long_bad_grid_is_shown_by_its_ends():
    t = torch.tensor([0.0, 1, 2, 3, 4, 5, 6, 5, 9], dtype=F64)
    with pytest.raises(ValueError, match=r"got \[0, 1, 2, 3, \.\.\., 5, 9\]$"):
        odeint(spiral, Y0, t)


@pytest.mark.parametrize(
    "t,match",
    [
        (torch.zeros(2, 2, dtype=F64), "1-D time grid"),
        (torch.zeros(0, dtype=F64), "t is empty"),
        (_t(0.0, 1.0, 1.0), "strictly increasing or strictly decreasing"),
        (_t(0.0, 1.0, 0.5), "strictly increasing or strictly decreasing"),
        (_t(0.0, float("nan")), "NaN or infinite"),
    ],
)
def test_bad_time_grid(t, match):
    with pytest.raises(ValueError, match=match):
        odeint(spiral, Y0, t)


def test_bad_initial_state():
    with pytest.raises(TypeError, match="floating-point"):
        odeint(spiral, torch.tensor([1, 2]), _t(0.0, 1.0))
    with pytest.raises(ValueError, match="NaN or infinite"):
        odeint(spiral, torch.tensor([float("inf"), 0.0], dtype=F64), _t(0.0, 1.0))
    with pytest.raises(TypeError, match=r"y0\[1\] must have a floating-point dtype"):
        odeint(spiral, (Y0, torch.tensor([1, 2])), _t(0.0, 1.0))
    with pytest.raises(ValueError, match="empty tuple"):
        odeint(spiral, (), _t(0.0, 1.0))
    with pytest.raises(TypeError, match="torch.Tensor"):
        odeint(spiral, [2.0, 0.0], _t(0.0, 1.0))


def test_field_returning_the_wrong_shape_or_dtype():
    with pytest.raises(ValueError, match=r"returned shape \(3,\), expected the shape of y0, \(2,\)"):
        odeint(lambda t, y: torch.zeros(3, dtype=F64), Y0, _t(0.0, 1.0))
    with pytest.raises(TypeError, match="returned dtype torch.float32"):
        odeint(lambda t, y: torch.zeros(2), Y0, _t(0.0, 1.0))


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown method 'rk45'.*'euler'.*'dopri5'"):
        odeint(spiral, Y0, _t(0.0, 1.0), method="rk45")


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_non_positive_step_size(bad):
    with pytest.raises(ValueError, match="step_size must be a positive finite number"):
        odeint(spiral, Y0, _t(0.0, 1.0), method="euler", step_size=bad)


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("bad", [0.0, -1e-6])
def test_non_positive_tolerance(name, bad):
    with pytest.raises(ValueError, match=f"{name} must be a positive finite number"):
        odeint(spiral, Y0, _t(0.0, 1.0), **{name: bad})


def test_step_size_with_an_adaptive_method_is_refused():
    with pytest.raises(ValueError, match="step_size applies to the fixed-step methods"):
        odeint(spiral, Y0, _t(0.0, 1.0), method="dopri5", step_size=0.1)


def test_unknown_option():
    with pytest.raises(ValueError, match="unknown option"):
        odeint(spiral, Y0, _t(0.0, 1.0), options={"stepsize": 0.1})


def test_adaptive_solve_that_exceeds_its_step_budget():
    stiff = lambda t, y: -1e5 * (y - torch.cos(t))
    with pytest.raises(StepBudgetExceeded, match="max_steps=50"):
        odeint(stiff, torch.zeros(1, dtype=F64), _t(0.0, 1.0), max_steps=50)


def test_unstable_fixed_step_solve_raises_instead_of_returning_nan():
    with pytest.raises(FloatingPointError, match="unstable"):
        odeint(lambda t, y: -1e3 * y, torch.ones(1, dtype=F64), _t(0.0, 100.0), method="euler", step_size=0.5)


def test_bad_max_steps():
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        odeint(spiral, Y0, _t(0.0, 1.0), max_steps=0)


def test_fixed_step_methods_registry():
    assert set(FIXED_STEP_METHODS) == {"euler", "midpoint", "rk4", "rk38"}


def test_public_tableaus_take_steps_by_hand():
    from nodelib.solvers import TABLEAUS, rk_step

    assert set(TABLEAUS) == {"euler", "midpoint", "rk4", "rk38", "dopri5"}
    # one RK4 step by hand equals odeint with a single step
    h = torch.tensor(0.1, dtype=F64)
    by_hand, ks = rk_step(spiral, TABLEAUS["rk4"], torch.tensor(0.0, dtype=F64), Y0, h)
    assert len(ks) == 4
    assert torch.equal(by_hand, odeint(spiral, Y0, torch.tensor([0.0, 0.1], dtype=F64), method="rk4")[-1])


# --- order conditions, exactly: every tableau has the order it claims, and not one more ----------------------

def _trees(order: int) -> list:
    """All rooted trees with ``order`` vertices, each as a sorted tuple of its children's subtrees."""
    if order == 1:
        return [()]
    found = set()

    def forests(n: int, max_tree=None) -> list:
        # multisets of trees with n vertices in all, as non-increasing tuples
        if n == 0:
            return [()]
        out = []
        for k in range(1, n + 1):
            for tree in _trees(k):
                if max_tree is not None and (k, tree) > max_tree:
                    continue
                for rest in forests(n - k, (k, tree)):
                    out.append(((k, tree),) + rest)
        return out

    for forest in forests(order - 1):
        found.add(tuple(sorted((t for _, t in forest), key=repr)))
    return sorted(found, key=repr)


def _size(tree) -> int:
    return 1 + sum(_size(c) for c in tree)


def _gamma(tree) -> int:
    out = _size(tree)
    for c in tree:
        out *= _gamma(c)
    return out


def _stage_weights(tb, tree, b):
    from fractions import Fraction

    s = len(b)
    A = [[Fraction(0)] * s for _ in range(s)]
    for i, row in enumerate(tb.a):
        for j, a in enumerate(row):
            A[i][j] = Fraction(a)

    def u(t):
        vec = [Fraction(1)] * s
        for child in t:
            inner = u(child)
            vec = [vec[i] * sum(A[i][j] * inner[j] for j in range(s)) for i in range(s)]
        return vec

    return sum(Fraction(bi) * ui for bi, ui in zip(b, u(tree)))


def test_rooted_trees_are_counted_right():
    assert [len(_trees(n)) for n in range(1, 7)] == [1, 1, 2, 4, 9, 20]


@pytest.mark.parametrize("tb", [EULER, MIDPOINT, RK4, RK38, DOPRI5])
def test_tableaus_meet_every_order_condition_up_to_their_order_and_no_further(tb):
    from fractions import Fraction

    def order_of(b):
        p = 0
        while p < 7 and all(_stage_weights(tb, t, b) == Fraction(1, _gamma(t)) for t in _trees(p + 1)):
            p += 1
        return p

    assert order_of(tb.b) == tb.order
    if tb.b_hat is not None:
        assert order_of(tb.b_hat) == tb.order - 1  # the embedded solution of Dormand-Prince is fourth order


# --- accuracy on a field that depends on time: a stage at the wrong time loses the order ---------------------

def gaussian_field(t, y):
    return -2 * t * y  # y(t) = y0 exp(-t^2)


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("rk4", 4), ("rk38", 4)])
def test_fixed_step_order_on_a_time_dependent_field(method, order):
    T, y0 = 1.5, torch.ones(1, dtype=F64)
    hs = [0.02, 0.01, 0.005, 0.0025] if order < 4 else [0.1, 0.05, 0.025, 0.0125]
    errs = [abs(odeint(gaussian_field, y0, [0.0, T], method=method, step_size=h)[-1, 0].item() - math.exp(-T * T))
            for h in hs]
    assert abs(estimate_order(hs, errs) - order) < 0.15


def test_dopri5_is_fifth_order_with_fixed_steps_on_a_time_dependent_field():
    from nodelib.solvers import rk_step

    def solve(n):
        y, t = torch.ones(1, dtype=F64), torch.tensor(0.0, dtype=F64)
        h = torch.tensor(1.5 / n, dtype=F64)
        for _ in range(n):
            y, _ = rk_step(gaussian_field, DOPRI5, t, y, h)
            t = t + h
        return abs(y[0].item() - math.exp(-2.25))

    ns = [8, 16, 32, 64]
    assert abs(estimate_order([1.5 / n for n in ns], [solve(n) for n in ns]) - 5) < 0.3


def test_dopri5_accuracy_on_a_time_dependent_field_and_a_start_away_from_zero():
    ys = odeint(gaussian_field, torch.ones(1, dtype=F64) * math.exp(-1.0), [1.0, 2.0, 3.0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ys[:, 0], torch.exp(-torch.tensor([1.0, 4.0, 9.0], dtype=F64)), rtol=1e-8, atol=1e-12)


# --- the step-size controller: exponent, clamps, and a problem that makes it reject steps ----------------------

def test_step_factor_is_safety_times_ratio_to_minus_one_over_the_order():
    from nodelib._impl.dopri5 import DFACTOR, IFACTOR, SAFETY, step_factor

    assert step_factor(0.5, 5) == pytest.approx(SAFETY * 0.5 ** (-1 / 5), rel=1e-15)
    assert step_factor(2.0, 5) == pytest.approx(SAFETY * 2.0 ** (-1 / 5), rel=1e-15)
    assert step_factor(1e-12, 5) == IFACTOR and step_factor(0.0, 5) == IFACTOR
    assert step_factor(1e6, 5) == DFACTOR
    assert step_factor(1.0001, 5) <= 1.0  # a rejected step never grows


def test_van_der_pol_makes_dopri5_reject_steps_and_it_stays_accurate():
    mu = 5.0
    vdp = lambda t, y: torch.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])
    y0, t = torch.tensor([2.0, 0.0], dtype=F64), torch.tensor([0.0, 10.0], dtype=F64)
    ys, stats = odeint(vdp, y0, t, rtol=1e-6, atol=1e-6, return_stats=True)
    reference = torchdiffeq.odeint(vdp, y0, t, rtol=1e-12, atol=1e-12, method="dopri8")
    assert stats.n_rejected >= 5
    assert stats.nfe == 2 + 6 * (stats.n_steps + stats.n_rejected)  # initial f, Hairer's trial f, 6 per try
    assert (ys[-1] - reference[-1]).abs().max() < 1e-4
    assert sum(abs(h) for h in stats.step_sizes) == pytest.approx(10.0, rel=1e-12)


# --- the fixed grid: a partial last step is taken, never dropped; the budget is checked up front -------------

def test_a_step_that_does_not_divide_the_span_ends_in_a_shorter_step():
    ys, stats = odeint(gaussian_field, torch.ones(1, dtype=F64), [0.0, 1.0], method="rk4", step_size=0.3,
                       return_stats=True)
    assert stats.step_starts == pytest.approx([0.0, 0.3, 0.6, 0.9]) and stats.step_sizes[-1] == pytest.approx(0.1)
    assert abs(ys[-1, 0].item() - math.exp(-1.0)) < 1e-3
    assert fixed_step_count(torch.tensor([0.0, 1.0]), 0.1) == 10  # 1.0 / 0.1 forgiven its round-off


def test_fixed_step_budget_is_checked_before_anything_is_allocated():
    with pytest.raises(StepBudgetExceeded, match="takes 1,000,000,000,000 steps, more than max_steps=100,000"):
        odeint(spiral, Y0, [0.0, 1.0], method="euler", step_size=1e-12)
    assert odeint(spiral, Y0, [0.0, 1.0], method="euler", step_size=1e-4, max_steps=10_000).shape == (2, 2)
    with pytest.raises(StepBudgetExceeded, match="max_steps=5"):
        odeint(spiral, Y0, [0.0, 1.0], method="rk4", options={"step_size": 0.1, "max_num_steps": 5})


def test_max_num_steps_option_is_honoured_by_dopri5():
    with pytest.raises(StepBudgetExceeded, match="max_steps=3"):
        odeint(spiral, Y0, [0.0, 20.0], options={"max_num_steps": 3})


# --- library errors say what happened ---------------------------------------------------------------------

def test_step_size_underflow_is_its_own_error():
    from nodelib import StepSizeUnderflow

    blow_up = lambda t, y: y**2  # y = 1 / (1 - t) leaves every bound at t = 1
    with pytest.raises(StepSizeUnderflow, match="underflowed") as caught:
        odeint(blow_up, torch.ones(1, dtype=F64), [0.0, 2.0], max_steps=100_000)
    assert not isinstance(caught.value, StepBudgetExceeded)


def test_non_finite_field_values_are_reported_as_such():
    nan_after_half = lambda t, y: y * (torch.nan if float(t) > 0.5 else 1.0)
    with pytest.raises(FloatingPointError, match="returned NaN or infinite values"):
        odeint(nan_after_half, torch.ones(1, dtype=F64), [0.0, 1.0])
    with pytest.raises(FloatingPointError, match="at the initial state"):
        odeint(lambda t, y: y * torch.inf, torch.ones(1, dtype=F64), [0.0, 1.0])


def test_a_float64_grid_merged_by_the_cast_to_a_float32_state_is_refused():
    t = torch.tensor([1000.0, 1000.00001, 1000.00002], dtype=F64)
    with pytest.raises(ValueError, match="some times of the grid become equal"):
        odeint(spiral, Y0.float(), t, method="euler")
    assert odeint(spiral, Y0, t, method="euler").shape == (3, 2)  # a float64 state keeps them apart


def test_output_inside_a_step_is_linear_interpolation_and_dopri5_gives_the_time_gradient():
    ys = odeint(gaussian_field, torch.ones(1, dtype=F64), [0.0, 0.25, 0.5], method="rk4", step_size=0.5)
    end = odeint(gaussian_field, torch.ones(1, dtype=F64), [0.0, 0.5], method="rk4", step_size=0.5)[-1]
    torch.testing.assert_close(ys[1], (1 + end) / 2)  # the straight line, as the docstring says
    # y = y0 exp(t0^2 - t^2): dy(t1)/dt1 = -2 t1 y(t1), dy(t1)/dt0 = 2 t0 y(t1), dy(t1)/dy0 = exp(t0^2 - t1^2)
    t = torch.tensor([0.5, 1.0], dtype=F64, requires_grad=True)
    y0 = torch.ones(1, dtype=F64, requires_grad=True)
    ys, stats = odeint(gaussian_field, y0, t, rtol=1e-10, atol=1e-12, return_stats=True)
    ys[-1].sum().backward()
    y1 = math.exp(0.25 - 1.0)
    torch.testing.assert_close(t.grad, torch.tensor([2 * 0.5 * y1, -2 * 1.0 * y1], dtype=F64), rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(y0.grad, torch.tensor([y1], dtype=F64), rtol=1e-8, atol=1e-12)
    assert stats.nfe == 2 + 6 * (stats.n_steps + stats.n_rejected) + len(t)  # the time gradient's evaluations
