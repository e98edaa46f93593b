"""The fast path computes what the eager path computes: forward values and gradients, on the CPU."""
from __future__ import annotations

import pytest
import torch
import torchdiffeq

from nodelib.blocks import MLPField, ODEBlock
from nodelib.classification import build_classifier
from nodelib.fast import UnrolledSolve, fast_ode_block, fixed_grid


@pytest.mark.parametrize("step_size,expected", [(0.05, 21), (0.25, 5), (0.3, 5)])
def test_grid_is_torchdiffeqs(step_size, expected):
    grid = fixed_grid(0.0, 1.0, step_size)
    assert len(grid) == expected and grid[0] == 0 and grid[-1] == 1
    counted = []
    torchdiffeq.odeint(lambda t, z: counted.append(float(t)) or z, torch.zeros(1), torch.tensor([0.0, 1.0]),
                       method="euler", options={"step_size": step_size})
    torch.testing.assert_close(torch.tensor(counted), grid[:-1])


def _loss_and_grads(model, x, y):
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("method,step_size", [("euler", 0.05), ("rk4", 0.25)])
def test_unrolled_solve_matches_torchdiffeq_values_and_gradients(method, step_size):
    torch.manual_seed(0)
    model = build_classifier("rknet", 1, 10, width=16, stem_kind="small",
                             solver={"method": method, "options": {"step_size": step_size}, "adjoint": False})
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    eager_loss, eager_grads = _loss_and_grads(model, x, y)
    block = model.body[0]
    keys = list(model.state_dict())
    fast, how = fast_ode_block(block, compile=False)
    assert how.startswith(f"unrolled {method}") and model.body[0] is block  # the block is left as it was
    model.counter.reset()
    model.body[0] = fast
    fast_loss, fast_grads = _loss_and_grads(model, x, y)
    torch.testing.assert_close(fast_loss, eager_loss, rtol=1e-6, atol=1e-6)
    for a, b in zip(fast_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert model.counter.forward_nfe == (20 if method == "euler" else 16)  # counted outside the solve
    # the fast model keeps the eager model's state_dict keys: checkpoints load both ways
    assert list(model.state_dict()) == keys
    model.body[0] = block
    model.load_state_dict(dict(model.state_dict()))


def test_compiled_unrolled_solve_matches_eager():
    torch.manual_seed(0)
    block = ODEBlock(MLPField(3, hidden=16), method="rk4", options={"step_size": 0.25})
    z0 = torch.randn(5, 3, requires_grad=True)
    fast, how = fast_ode_block(block, backend="aot_eager")  # traced and compiled without generating kernels
    assert "compiled" in how
    eager = block(z0)
    (g_eager,) = torch.autograd.grad(eager.square().sum(), z0)
    out = fast(z0)
    (g_fast,) = torch.autograd.grad(out.square().sum(), z0)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(g_fast, g_eager)


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        (dict(method="dopri5"), "adaptive"),
        (dict(method="rk4"), "no step_size"),
        (dict(method="rk4", options={"step_size": 0.25}, gradient="checkpointed"), "recomputes the solve"),
    ],
)
def test_fast_path_falls_back_and_says_why(kwargs, reason):
    block = ODEBlock(MLPField(2, hidden=8), **kwargs)
    field_before = block.field
    module, how = fast_ode_block(block, compile=False)
    assert reason in how and how.startswith("field compiled")
    assert block.field is field_before and list(module.state_dict()) == list(block.state_dict())
    z = torch.randn(4, 2, requires_grad=True)
    torch.testing.assert_close(module(z), block(z))
    (g_fast,) = torch.autograd.grad(module(z).sum(), z)
    (g_eager,) = torch.autograd.grad(block(z).sum(), z)
    torch.testing.assert_close(g_fast, g_eager)


def test_adjoint_blocks_are_left_as_they_are_and_no_process_wide_setting_changes():
    import torch._functorch.config as functorch_config

    before = functorch_config.donated_buffer
    block = ODEBlock(MLPField(2, hidden=8), method="rk4", options={"step_size": 0.25}, adjoint=True)
    module, how = fast_ode_block(block, backend="aot_eager")
    assert module is block and how.startswith("unchanged") and "retain_graph" in how
    z = torch.randn(4, 2, requires_grad=True)
    module(z).sum().backward()
    assert functorch_config.donated_buffer == before and z.grad is not None


def test_bad_inputs():
    with pytest.raises(TypeError, match="expected an ODEBlock"):
        fast_ode_block(MLPField(2))
    with pytest.raises(ValueError, match="step_size must be a positive"):
        fixed_grid(0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="method must be one of"):
        UnrolledSolve(MLPField(2), 0.0, 1.0, 0.1, method="dopri5")


@pytest.mark.slow  # over 10 s: the full suite runs it, the fast loop leaves it out
def test_speed_benchmark_runs_at_smoke_size(tmp_path):
    import json

    from nodelib.experiments import registry
    from nodelib.experiments.base import Context

    experiment = registry.get("gpu-speed")
    experiment.run(experiment.configuration(smoke=True, configs=("rk4", "dopri5-adjoint")),
                   Context(out=tmp_path, device="cpu", progress=False))
    rows = {r["config"]: r for r in json.loads((tmp_path / "result.json").read_text())["rows"]}
    rk4 = rows["rk4"]
    assert rk4["parameters"] == 208_266 and rk4["fast_path"].startswith("unrolled rk4 solve, 4 steps")
    assert rk4["torchdiffeq"]["nfe_forward"] == rk4["nodelib_fast"]["nfe_forward"] == 16
    adjoint = rows["dopri5-adjoint"]
    assert adjoint["fast_path"].startswith("unchanged") and adjoint["nodelib_fast"]["nfe_backward"] > 0
    for r in rows.values():  # the speed-up is the ratio of the two timings it reports
        assert r["speedup"] == pytest.approx(r["torchdiffeq"]["ms_per_iteration"] / r["nodelib_fast"]["ms_per_iteration"], rel=1e-6)
    with pytest.raises(ValueError, match="configs must be among"):
        experiment.configuration(configs=("rk5",))
