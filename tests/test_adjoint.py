"""nodelib.adjoint (chapter 2): the adjoint agrees with every other way of computing the gradient, the
checkpointed gradient is exactly backprop's, memory behaves as the chapter says, and the failure case fails."""
from __future__ import annotations

import json

import pytest
import torch
import torchdiffeq
from torch import nn

from nodelib import odeint, seed_everything
from nodelib.adjoint import AdjointStats, odeint_adjoint, odeint_checkpointed
from nodelib.blocks import MLPField
from nodelib.memory import saved_tensor_bytes

F64 = torch.float64
TIGHT = dict(rtol=1e-10, atol=1e-10)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


class Linear(nn.Module):
    """The spiral field z' = A z with A learnable, initialised at seed 003's matrix."""

    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=F64))

    def forward(self, t, z):
        return z @ self.A.T


def make_problem(kind: str):
    seed_everything(0)
    field = Linear() if kind == "linear" else MLPField(2, hidden=16, time_input=True).double()
    z0 = torch.randn(5, 2, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=F64, requires_grad=True)
    weights = torch.randn(3, 5, 2, dtype=F64)
    loss = lambda ys: (weights * ys).sum() + (ys[-1] ** 2).sum()  # observations at every time
    return field, z0, t, loss


def gradients(field, z0, t, loss, solve):
    inputs = [z0, t, *field.parameters()]
    grads = torch.autograd.grad(loss(solve(field, z0, t)), inputs, allow_unused=True)
    return {"z0": grads[0], "t": grads[1], "theta": torch.cat([g.flatten() for g in grads[2:]])}


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_adjoint_agrees_with_backprop_and_torchdiffeq(kind):
    field, z0, t, loss = make_problem(kind)
    ours = gradients(field, z0, t, loss, lambda f, z, s: odeint_adjoint(f, z, s, **TIGHT))
    backprop = gradients(field, z0, t, loss, lambda f, z, s: odeint(f, z, s, **TIGHT))
    theirs = gradients(field, z0, t, loss, lambda f, z, s: torchdiffeq.odeint_adjoint(f, z, s, **TIGHT))
    for key in ("z0", "theta"):
        assert rel(ours[key], backprop[key]) < 1e-6
        assert rel(ours[key], theirs[key]) < 1e-6
    assert rel(ours["t"], theirs["t"]) < 1e-6


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_adjoint_agrees_with_central_finite_differences(kind):
    field, z0, t, loss = make_problem(kind)
    ours = gradients(field, z0, t, loss, lambda f, z, s: odeint_adjoint(f, z, s, **TIGHT))

    def value(z=None, s=None):
        with torch.no_grad():
            return loss(odeint(field, z0 if z is None else z, t if s is None else s, **TIGHT)).item()

    eps = 1e-6
    for i in range(3):
        e = torch.zeros(3, dtype=F64)
        e[i] = eps
        fd = (value(s=t.detach() + e) - value(s=t.detach() - e)) / (2 * eps)
        assert ours["t"][i].item() == pytest.approx(fd, rel=1e-6, abs=1e-8)
    e = torch.zeros_like(z0)
    e[2, 1] = eps
    fd = (value(z=z0.detach() + e) - value(z=z0.detach() - e)) / (2 * eps)
    assert ours["z0"][2, 1].item() == pytest.approx(fd, rel=1e-6)
    p = next(field.parameters())
    with torch.no_grad():
        p.view(-1)[0] += eps
        plus = value()
        p.view(-1)[0] -= 2 * eps
        minus = value()
        p.view(-1)[0] += eps
    assert ours["theta"][0].item() == pytest.approx((plus - minus) / (2 * eps), rel=1e-6)


def test_adjoint_of_a_linear_ode_matches_the_closed_form():
    # z(T) = exp(TA) z0, L = c·z(T): dL/dz0 = exp(TA)^T c exactly
    field = Linear()
    z0 = torch.tensor([2.0, 0.0], dtype=F64, requires_grad=True)
    c = torch.tensor([1.0, -3.0], dtype=F64)
    T = 2.0
    (c * odeint_adjoint(field, z0, [0.0, T], **TIGHT)[-1]).sum().backward()
    expected = torch.linalg.matrix_exp(T * field.A.detach()).T @ c
    assert rel(z0.grad, expected) < 1e-8


def test_float32_adjoint_is_close_to_float64():
    seed_everything(0)
    f64 = MLPField(2, hidden=8).double()
    f32 = MLPField(2, hidden=8)
    f32.load_state_dict({k: v.float() for k, v in f64.state_dict().items()})
    z = torch.randn(4, 2, dtype=F64)
    odeint_adjoint(f64, z, [0.0, 1.0], rtol=1e-6, atol=1e-8)[-1].pow(2).sum().backward()
    odeint_adjoint(f32, z.float(), [0.0, 1.0], rtol=1e-5, atol=1e-6)[-1].pow(2).sum().backward()
    g64 = torch.cat([p.grad.flatten() for p in f64.parameters()])
    g32 = torch.cat([p.grad.flatten() for p in f32.parameters()]).double()
    assert g32.dtype == F64 and rel(g32, g64) < 1e-4


@pytest.mark.parametrize("every", [1, 3, 7, 100])
def test_checkpointed_gradient_is_backprop_through_the_same_solve(every):
    field, z0, t, loss = make_problem("mlp")
    kw = dict(method="rk4", step_size=0.03)  # 0.03 divides neither 0.4 nor 1.0: interpolated outputs too
    a = gradients(field, z0, t, loss, lambda f, z, s: odeint(f, z, s, **kw))
    b = gradients(field, z0, t, loss, lambda f, z, s: odeint_checkpointed(f, z, s, checkpoint_every=every, **kw))
    with torch.no_grad():
        assert torch.equal(odeint(field, z0, t, **kw), odeint_checkpointed(field, z0, t, checkpoint_every=every, **kw))
    for key in ("z0", "t", "theta"):
        assert (a[key] - b[key]).abs().max().item() <= 1e-10 * max(1.0, a[key].abs().max().item())


def test_checkpointing_recomputes_each_segment_once():
    field, z0, t, loss = make_problem("mlp")
    ys, stats = odeint_checkpointed(field, z0, t, method="rk4", step_size=0.05, checkpoint_every=5, return_stats=True)
    assert (stats.n_steps, stats.nfe) == (20, 80) and stats.step_sizes == pytest.approx([0.05] * 20)
    loss(ys).backward()
    assert (stats.n_steps, stats.nfe) == (20, 160)


def test_adjoint_counts_its_evaluations():
    field, z0, t, loss = make_problem("mlp")
    stats = AdjointStats()
    loss(odeint_adjoint(field, z0, t, method="rk4", step_size=0.1, stats=stats)).backward()
    assert stats.forward_nfe == 4 * 10
    assert stats.backward_nfe == 4 * 10  # the same grid, walked backwards


def _dissipative_problem(n_obs: int = 21):
    seed_everything(0)
    field = MLPField(2, hidden=16, damping=10.0).double()
    z0 = torch.randn(64, 2, dtype=F64)
    t = torch.linspace(0.0, 2.0, n_obs, dtype=F64)
    target = torch.randn(n_obs, 64, 2, dtype=F64)

    def grad(solve):
        field.zero_grad()
        ((solve(field, z0, t) - target) ** 2).mean().backward()
        return torch.cat([p.grad.flatten() for p in field.parameters()])

    return grad


@pytest.mark.slow  # over 10 s: the full suite runs it, the fast loop leaves it out
def test_restarting_at_observations_fixes_the_dissipative_case():
    """Strongly dissipative field, 21 observations, loose tolerance. Reconstructing z backwards is unstable;
    putting z back on the stored forward solution at every observation (the default) keeps the adjoint as
    accurate as torchdiffeq's, while carrying the reconstruction across all intervals is off by ~100%."""
    grad = _dissipative_problem()
    loose = dict(rtol=1e-4, atol=1e-6)
    true = grad(lambda f, z, t: odeint(f, z, t, rtol=1e-11, atol=1e-12))
    restarted = grad(lambda f, z, t: odeint_adjoint(f, z, t, **loose))
    theirs = grad(lambda f, z, t: torchdiffeq.odeint_adjoint(f, z, t, **loose))
    carried = grad(lambda f, z, t: odeint_adjoint(f, z, t, restart=False, **loose))
    assert rel(restarted, true) < 1e-3 and rel(theirs, true) < 1e-3
    assert rel(restarted, true) < 3 * rel(theirs, true)
    assert rel(carried, true) > 0.1
    # with a tight tolerance the restarted adjoint converges to the true gradient
    assert rel(grad(lambda f, z, t: odeint_adjoint(f, z, t, rtol=1e-10, atol=1e-12)), true) < 1e-6


def test_restart_agrees_with_finite_differences():
    seed_everything(3)
    field = MLPField(1, hidden=4, damping=5.0).double()
    z0 = torch.randn(3, 1, dtype=F64)
    t = torch.linspace(0.0, 1.0, 11, dtype=F64)
    loss = lambda ys: (ys ** 2).sum()
    tight = dict(rtol=1e-10, atol=1e-12)
    p = next(field.parameters())
    (g,) = torch.autograd.grad(loss(odeint_adjoint(field, z0, t, **tight)), p)
    eps, k = 1e-6, (0, 0)
    with torch.no_grad():
        p[k] += eps
        up = loss(odeint(field, z0, t, **tight))
        p[k] -= 2 * eps
        down = loss(odeint(field, z0, t, **tight))
        p[k] += eps
    assert abs(g[k].item() - (up - down).item() / (2 * eps)) < 1e-6 * max(1.0, abs(g[k].item()))


def test_solver_options_reach_the_backward_solve():
    """torchdiffeq's convention options={"step_size": h} fixes both grids: equal forward and backward NFE, and
    the gradient of the fixed-step adjoint is within RK4's discretisation error of the exact discrete one."""
    field, z0, t, loss = make_problem("mlp")
    stats = AdjointStats()
    g_adj = gradients(field, z0, t, loss, lambda f, z, s: odeint_adjoint(
        f, z, s, method="rk4", options={"step_size": 0.01}, stats=stats))
    assert stats.forward_nfe == stats.backward_nfe == 4 * 100
    g_exact = gradients(field, z0, t, loss, lambda f, z, s: odeint_adjoint(f, z, s, **TIGHT))
    assert rel(g_adj["theta"], g_exact["theta"]) < 1e-7
    # adjoint_step_size / adjoint_options change the backward grid only
    for kwargs in (dict(adjoint_step_size=0.05), dict(adjoint_options={"step_size": 0.05})):
        stats = AdjointStats()
        loss(odeint_adjoint(field, z0, t, method="rk4", options={"step_size": 0.01}, stats=stats, **kwargs)).backward()
        assert (stats.forward_nfe, stats.backward_nfe) == (400, 4 * 20)
    # adjoint_rtol loosens the backward solve only
    counts = {}
    for adjoint_rtol in (1e-10, 1e-4):
        stats = AdjointStats()
        loss(odeint_adjoint(field, z0, t, rtol=1e-10, atol=1e-10, adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_rtol,
                            stats=stats)).backward()
        counts[adjoint_rtol] = (stats.forward_nfe, stats.backward_nfe)
    assert counts[1e-10][0] == counts[1e-4][0] and counts[1e-4][1] < counts[1e-10][1] / 2
    # the step budget travels too: forward fits in 50 steps, the backward solve at 2 steps per interval does not
    from nodelib import StepBudgetExceeded

    ys = odeint_adjoint(field, z0, t, options={"max_num_steps": 50}, adjoint_options={"max_num_steps": 2})
    with pytest.raises(StepBudgetExceeded, match="max_steps=2"):
        loss(ys).backward()


def test_tuple_states_match_the_single_tensor_path():
    """(h, a) solved as a tuple gives what the concatenated state gives: values and every gradient."""
    seed_everything(2)
    field = MLPField(4, hidden=8, time_input=True).double()
    h0 = torch.randn(3, 2, dtype=F64, requires_grad=True)
    a0 = torch.randn(3, 2, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=F64)
    split = lambda t, s: tuple(field(t, torch.cat(s, dim=-1)).split(2, dim=-1))
    kw = dict(rtol=1e-10, atol=1e-10)
    for solve in (
        lambda f, y: odeint(f, y, t, **kw),
        lambda f, y: odeint_adjoint(f, y, t, adjoint_params=tuple(field.parameters()), **kw),
        lambda f, y: odeint_checkpointed(f, y, t, method="rk4", step_size=0.1, checkpoint_every=2),
    ):
        whole = solve(lambda t, z: field(t, z), torch.cat([h0, a0], dim=-1))
        hs, as_ = solve(split, (h0, a0))
        assert hs.shape == as_.shape == (3, 3, 2)
        torch.testing.assert_close(torch.cat([hs, as_], dim=-1), whole, rtol=1e-9, atol=1e-10)
        g_whole = torch.autograd.grad((whole ** 2).sum(), (h0, a0, *field.parameters()))
        g_tuple = torch.autograd.grad((hs ** 2).sum() + (as_ ** 2).sum(), (h0, a0, *field.parameters()))
        for x, y in zip(g_tuple, g_whole):
            torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-10)


def test_tuple_states_have_per_part_tolerances_and_norm():
    """A tiny part keeps its own accuracy: with the mixed norm and a per-part atol, the small component of a
    tuple state is solved to its tolerance, which one RMS over the concatenation would not enforce."""
    big0, small0 = torch.full((1000,), 1.0, dtype=F64), torch.tensor([1e-6], dtype=F64)
    field = lambda t, s: (-s[0], torch.cos(5 * t) * s[1] * 5)
    exact_small = 1e-6 * torch.exp(torch.sin(torch.tensor(5.0, dtype=F64)))
    (_, small), stats_tuple = odeint(field, (big0, small0), [0.0, 1.0], rtol=1e-3, atol=[1e-3, 1e-12],
                                     return_stats=True)
    assert abs(small[-1, 0] - exact_small) / exact_small < 1e-3
    flat = lambda t, y: torch.cat(field(t, (y[:1000], y[1000:])))
    ys = odeint(flat, torch.cat([big0, small0]), [0.0, 1.0], rtol=1e-3, atol=1e-12)
    assert abs(ys[-1, -1] - exact_small) / exact_small > 3 * abs(small[-1, 0] - exact_small) / exact_small
    with pytest.raises(ValueError, match="one per part"):
        odeint(field, (big0, small0), [0.0, 1.0], atol=[1e-3, 1e-3, 1e-3])
    with pytest.raises(TypeError, match="must return a tuple of 2 tensors"):
        odeint(lambda t, s: s[0], (big0, small0), [0.0, 1.0])
    with pytest.raises(TypeError, match="share one dtype"):
        odeint(field, (big0, small0.float()), [0.0, 1.0])


def test_adjoint_refuses_bad_restart_flag():
    with pytest.raises(TypeError, match="restart must be True or False"):
        odeint_adjoint(lambda t, z: -z, torch.ones(2), [0.0, 1.0], adjoint_params=(), restart="yes")


def test_memory_adjoint_is_constant_backprop_grows():
    seed_everything(0)
    field = MLPField(4, hidden=32)
    z0 = torch.randn(16, 4)
    saved = {}
    for n in (10, 100):
        for name, solve in [("backprop", odeint), ("adjoint", odeint_adjoint)]:
            ys, nbytes = saved_tensor_bytes(lambda: solve(field, z0, [0.0, 1.0], method="euler", step_size=1.0 / n))
            ys[-1].sum().backward()
            saved[name, n] = nbytes
    assert saved["adjoint", 10] == saved["adjoint", 100]
    assert 9.0 < saved["backprop", 100] / saved["backprop", 10] < 11.0
    assert saved["backprop", 10] > 10 * saved["adjoint", 10]


def test_clear_errors():
    with pytest.raises(TypeError, match="adjoint_params"):
        odeint_adjoint(lambda t, z: -z, torch.ones(2), [0.0, 1.0])
    with pytest.raises(ValueError, match="fixed-step method"):
        odeint_checkpointed(lambda t, z: -z, torch.ones(2), [0.0, 1.0], method="dopri5")
    with pytest.raises(ValueError, match="checkpoint_every must be a positive integer"):
        odeint_checkpointed(lambda t, z: -z, torch.ones(2), [0.0, 1.0], checkpoint_every=0)
    with pytest.raises(TypeError, match="does not match y0"):
        odeint_adjoint(MLPField(2), torch.ones(2, dtype=F64), [0.0, 1.0])
    with pytest.raises(ValueError, match="damping must be non-negative"):
        MLPField(2, damping=-1.0)
    # a plain function with explicit (here: no) parameters is fine
    assert odeint_adjoint(lambda t, z: -z, torch.ones(2), [0.0, 1.0], adjoint_params=()).shape == (2, 2)


@pytest.mark.slow  # over 10 s: the full suite runs it, the fast loop leaves it out
def test_memory_experiment_smoke(tmp_path):
    from nodelib.experiments import registry
    from nodelib.experiments.base import Context

    experiment = registry.get("adjoint-memory")
    experiment.run(experiment.configuration(steps=(4,), dim=2, hidden=8, batch=4), Context(out=tmp_path, device="cpu",
                                                                                       progress=False))
    data = json.loads((tmp_path / "result.json").read_text())
    assert [r["method"] for r in data["rows"]] == ["backprop", "adjoint", "checkpointed"]
    assert data["machine"]["device"] == "cpu" and data["config"]["hidden"] == 8
    assert all(r["saved_bytes"] > 0 and r["nfe"] > 0 for r in data["rows"])
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"


def test_memory_experiment_rejects_bad_options():
    from nodelib.experiments import registry

    with pytest.raises(ValueError, match="steps must be positive"):
        registry.get("adjoint-memory").configuration(steps=(0,))


def test_recorded_memory_result_ships_with_the_package_and_says_where_it_ran():
    from nodelib.experiments import load_result

    record = load_result("adjoint_memory_cpu")
    assert record["experiment"] == "adjoint_memory"
    assert {"device", "cpu_count", "torch", "revision", "date"} <= set(record["machine"])
    by = {(r["method"], r["n_steps"]): r for r in record["rows"]}
    # the lesson the chapter draws from it
    assert by["backprop", 1000]["peak_bytes"] > 100 * by["adjoint", 1000]["peak_bytes"]
    assert by["adjoint", 1000]["saved_bytes"] == by["adjoint", 10]["saved_bytes"]
    with pytest.raises(ValueError, match="available"):
        load_result("no_such_result")
