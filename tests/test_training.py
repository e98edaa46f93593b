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


# --- the one loop: selection, plateaus, undefined metrics, checkpoints -------------------------------------------

def _quadratic(scores, **options):
    """A one-parameter model trained on (w - 1)^2 whose validation 'accuracy' is read from ``scores``."""
    from nodelib.training import Joint, fit, make_optimizer

    model = nn.Linear(1, 1, bias=False)
    values = iter(scores)
    seen = {}

    def validate(m):
        score = next(values)
        seen[len(seen) + 1] = m.weight.detach().clone()
        return {"validation_accuracy": score, "validation_loss": 1.0}

    result = fit(model, lambda e: [0], lambda net, b: (net.weight - 1).pow(2).sum(),
                 Joint(make_optimizer(model.parameters(), "sgd", 0.1)), validate=validate, progress=False,
                 **options)
    return model, result, seen


def test_fit_keeps_the_best_validated_epoch_and_says_whether_it_was_still_improving():
    model, result, seen = _quadratic([0.2, 0.7, 0.5, 0.4], epochs=4)
    assert result.best_epoch == 2 and result.selected_by == "validation_accuracy" and result.best_score == 0.7
    assert torch.equal(model.weight, seen[2])  # the selected epoch's parameters, not the last epoch's
    assert not result.still_improving  # without patience: still improving means the best epoch was the last
    _, last, _ = _quadratic([0.2, 0.5, 0.6], epochs=3)
    assert last.best_epoch == 3 and last.still_improving and last.record()["still_improving"]


def test_patience_stops_a_plateaued_run_and_flags_one_that_ran_out_of_epochs():
    _, stopped, _ = _quadratic([0.5, 0.4, 0.4, 0.3, 0.9], epochs=5, patience=2)
    assert stopped.epochs == 3 and stopped.stopped_early and not stopped.still_improving
    _, short, _ = _quadratic([0.5, 0.6, 0.55], epochs=3, patience=2)
    assert short.epochs == 3 and short.still_improving and not short.stopped_early  # 1 epoch since the best < 2


def test_an_undefined_selection_metric_is_an_error_or_a_stated_fallback():
    from nodelib.errors import SelectionUndefined

    with pytest.raises(SelectionUndefined, match="no deaths among its patients"):
        _quadratic([float("nan")] * 3, epochs=3)
    _, result, _ = _quadratic([float("nan")] * 3, epochs=3, fallback="validation_loss")
    assert result.selected_by == "validation_loss" and "nan" in result.note and result.best_epoch == 1
    with pytest.raises(SelectionUndefined, match="became nan"):
        _quadratic([0.5, float("nan")], epochs=2, fallback="validation_loss")


def test_a_resumed_fit_ends_bit_for_bit_where_an_uninterrupted_one_ends(tmp_path):
    from nodelib.errors import RunError
    from nodelib.training import Joint, fit, make_optimizer, make_scheduler

    x, y = torch.randn(32, 3), torch.randn(32, 1)

    def go(epochs, checkpoint=None, resume=False, lr=0.05):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        strategy = Joint(make_optimizer(model.parameters(), "adam", lr))
        schedule = make_scheduler(strategy.optimizers[0], (2,), 0.5)

        def batches(epoch):
            order = torch.randperm(32, generator=torch.Generator().manual_seed(epoch))
            return order.split(8)

        result = fit(model, batches, lambda m, i: ((m(x[i]) - y[i]) ** 2).mean(), strategy, epochs=epochs,
                     validate=lambda m: {"validation_loss": float(((m(x) - y) ** 2).mean())}, mode="min",
                     schedulers=[schedule], checkpoint=checkpoint, resume=resume, progress=False,
                     run_config={"lr": lr})
        return model, result

    whole, whole_result = go(4)
    go(2, tmp_path / "c.pt")
    resumed, resumed_result = go(4, tmp_path / "c.pt", resume=True)
    assert [r["train_loss"] for r in resumed_result.history] == [r["train_loss"] for r in whole_result.history]
    assert [r["lr"] for r in resumed_result.history] == [0.05, 0.025, 0.025, 0.025]
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    with pytest.raises(RunError, match="other settings"):
        go(4, tmp_path / "c.pt", resume=True, lr=0.1)


def test_the_optimiser_factory_and_its_errors():
    from nodelib.training import make_optimizer, make_scheduler

    w = [nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer(w, "sgd", 0.1), torch.optim.SGD)
    assert make_optimizer(w, "sgd", 0.1).param_groups[0]["momentum"] == 0.9
    for bad, match in ((dict(name="lbfgs"), "optimizer must be one of"), (dict(lr=0.0), "positive number"),
                       (dict(lr=1e-3, weight_decay=-1), "non-negative")):
        with pytest.raises(ValueError, match=match):
            make_optimizer(w, **{"name": "adam", "lr": 1e-3, **bad})
    with pytest.raises(ValueError, match="milestones"):
        make_scheduler(make_optimizer(w), (0, 2))
