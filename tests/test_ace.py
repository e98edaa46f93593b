"""ACE-NODE (chapter 6): attention arithmetic, the co-evolving fields, their gradients, Algorithm 1, the models."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchdiffeq
from torch import nn

from nodelib import SolverConfig, odeint, seed_everything
from nodelib.ace import (
    ACEConvBody,
    CorrelationInitialAttention,
    ElementwiseAttentionField,
    FixedCorrelationField,
    LatentODEModel,
    LearnedInitialAttention,
    ODERNNEncoder,
    PairwiseAttentionField,
    ReducedConvODEFunc,
    TanhMLP,
    attention_health,
    attention_parameters,
    attention_penalty,
    correlation_matrix,
    elementwise_attend,
    evaluate_series,
    hold_out,
    pairwise_attend,
    series_loss,
    split_parameters,
)
from nodelib.adjoint import odeint_adjoint
from nodelib.classification import build_classifier
from nodelib.layers import ConvODEFunc
from nodelib.nfe import backward_counted
from nodelib.training import Alternating, Joint, fit, make_optimizer
from nodelib.utils import count_parameters

F64 = torch.float64


# --- attention arithmetic -------------------------------------------------------------------------------------

def test_correlation_matrix_is_pearsons_over_the_batch():
    h = torch.randn(50, 4, dtype=F64)
    h[:, 1] += 2 * h[:, 0]
    expected = np.corrcoef(h.numpy(), rowvar=False)
    assert np.allclose(correlation_matrix(h).numpy(), expected, atol=1e-12)


def test_correlation_matrix_degenerate_cases_are_finite_and_attend_to_themselves():
    assert torch.equal(correlation_matrix(torch.randn(1, 3)), torch.eye(3))  # a batch of one
    h = torch.randn(10, 3, requires_grad=True)
    constant = torch.cat([h[:, :1], torch.full((10, 1), 4.0), h[:, 2:]], dim=1)  # dimension 1 never varies
    corr = correlation_matrix(constant)
    assert torch.isfinite(corr).all()
    assert corr[1, 1] == 1 and (corr[1, [0, 2]] == 0).all() and (corr[[0, 2], 1] == 0).all()
    corr.sum().backward()
    assert torch.isfinite(h.grad).all()
    with pytest.raises(ValueError, match=r"shape \(B, d\)"):
        correlation_matrix(torch.randn(2, 3, 4))


def test_pairwise_attention_is_h_times_softmax_transposed():
    h, a = torch.randn(3, 4, dtype=F64), torch.randn(3, 4, 4, dtype=F64)
    expected = torch.stack([h[b:b + 1] @ torch.softmax(a[b], dim=-1).T for b in range(3)]).squeeze(1)
    assert torch.allclose(pairwise_attend(h, a), expected, atol=1e-14)
    ones = torch.ones(3, 4, dtype=F64)  # rows of a softmax sum to one: a constant state is left as it is
    assert torch.allclose(pairwise_attend(ones, a), ones)
    with pytest.raises(ValueError, match=r"a of shape \(B, d, d\)"):
        pairwise_attend(h, a[:, :3])


def test_elementwise_attention_masks_with_a_sigmoid():
    h, a = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    assert torch.allclose(elementwise_attend(h, a), h * torch.sigmoid(a))
    with pytest.raises(ValueError, match="same shape"):
        elementwise_attend(h, a[:, :2])


def _pairwise_field(d: int = 3) -> PairwiseAttentionField:
    return PairwiseAttentionField(TanhMLP(d, d, 8, 2), TanhMLP(d, d * d, 8, 2)).double()


def _elementwise_field(d: int = 3) -> ElementwiseAttentionField:
    return ElementwiseAttentionField(TanhMLP(d, d, 8, 2), TanhMLP(d, d, 8, 2)).double()


def test_fields_keep_h_and_a_as_separate_parts_of_the_state():
    field = _pairwise_field()
    h, a = torch.randn(5, 3, dtype=F64), torch.randn(5, 3, 3, dtype=F64)
    dh, da = field(torch.tensor(0.0), (h, a))
    assert dh.shape == h.shape and da.shape == a.shape
    hs, as_ = odeint(field, (h, a), torch.linspace(0, 1, 4, dtype=F64), method="rk4", step_size=0.1)
    assert hs.shape == (4, 5, 3) and as_.shape == (4, 5, 3, 3)
    with pytest.raises(ValueError, match=r"expects the state \(h, a\)"):
        field(torch.tensor(0.0), h)
    fixed = FixedCorrelationField(TanhMLP(3, 3, 8, 2).double())
    assert fixed(torch.tensor(0.0), h).shape == h.shape


# --- gradients: adjoint, backprop and finite differences --------------------------------------------------------

def _loss_and_params(field: nn.Module, state: tuple[torch.Tensor, torch.Tensor], how: str):
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    settings = dict(method="dopri5", rtol=1e-10, atol=1e-12)
    if how == "adjoint":
        h, a = odeint_adjoint(field, state, t, **settings)
    elif how == "torchdiffeq-adjoint":
        h, a = torchdiffeq.odeint_adjoint(field, state, t, **settings)
    else:
        h, a = odeint(field, state, t, **settings)
    return (h[1:] ** 2).sum() + torch.sin(h[-1]).sum()


@pytest.mark.parametrize("kind", ["pairwise", "elementwise"])
def test_gradients_agree_three_ways(kind):
    seed_everything(0)
    field = _pairwise_field() if kind == "pairwise" else _elementwise_field()
    h0 = torch.randn(2, 3, dtype=F64)
    a0 = torch.randn(2, 3, 3, dtype=F64) if kind == "pairwise" else torch.randn(2, 3, dtype=F64)
    params = list(field.parameters())
    grads = {}
    for how in ("backprop", "adjoint", "torchdiffeq-adjoint"):
        state = (h0.clone().requires_grad_(), a0.clone().requires_grad_())
        loss = _loss_and_params(field, state, how)
        grads[how] = torch.autograd.grad(loss, [*state, *params])
    for how in ("adjoint", "torchdiffeq-adjoint"):
        for ours, ref in zip(grads[how], grads["backprop"]):
            assert torch.allclose(ours, ref, rtol=1e-6, atol=1e-8), how
    # central differences on a few entries of θ_f, θ_g and a(0)
    probes = [(field.f.net[0].weight, (0, 1)), (field.g.net[2].bias, (1,)), (a0, (1, 2) if kind == "elementwise" else (0, 1, 2))]
    eps = 1e-6
    for tensor, index in probes:
        with torch.no_grad():
            old = tensor[index].item()
            tensor[index] = old + eps
            up = _loss_and_params(field, (h0, a0), "backprop").item()
            tensor[index] = old - eps
            down = _loss_and_params(field, (h0, a0), "backprop").item()
            tensor[index] = old
        numeric = (up - down) / (2 * eps)
        if tensor is a0:
            analytic = grads["backprop"][1][index].item()
        else:
            position = next(i for i, p in enumerate(params) if p is tensor)
            analytic = grads["backprop"][2 + position][index].item()
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic))


def _theta_f_gradient(field: PairwiseAttentionField, h0, a0, attention_constant: bool):
    """dL/dθ_f exactly, or as Eq. 7 computes it: with a(t) held constant while h's dependence on θ_f is followed."""
    t = torch.linspace(0, 1, 2, dtype=F64)
    if not attention_constant:
        h, _ = odeint(field, (h0, a0), t, method="rk4", step_size=0.01)
    else:
        def eq7_field(s, state):  # the same values; a(t) carries no dependence on θ_f (g sees a detached h')
            h, a = state
            attended = pairwise_attend(h, a)
            return field.f(s, attended), field.g(s, attended.detach()).reshape(a.shape)

        h, _ = odeint(eq7_field, (h0, a0), t, method="rk4", step_size=0.01)
    loss = (h[-1] ** 2).sum()
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(field.f.parameters()))])


def test_eq7_is_exact_only_when_the_attention_ignores_the_state():
    seed_everything(1)
    field = _pairwise_field()
    with torch.no_grad():
        for p in field.g.parameters():
            p.mul_(3.0)  # an attention that moves
    h0, a0 = torch.randn(4, 3, dtype=F64), torch.randn(4, 3, 3, dtype=F64)
    exact = _theta_f_gradient(field, h0, a0, attention_constant=False)
    eq7 = _theta_f_gradient(field, h0, a0, attention_constant=True)
    assert (eq7 - exact).norm() / exact.norm() > 1e-3  # the coupling through g is missing from Eq. 7

    class TimeOnly(nn.Module):  # da/dt depends on t only: then a(t) really is a constant of θ_f
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(9, dtype=F64))

        def forward(self, t, x):
            return torch.sin(t * self.w).expand(x.shape[0], -1)

    decoupled = PairwiseAttentionField(field.f, TimeOnly())
    exact = _theta_f_gradient(decoupled, h0, a0, attention_constant=False)
    eq7 = _theta_f_gradient(decoupled, h0, a0, attention_constant=True)
    assert (eq7 - exact).norm() / exact.norm() < 1e-12


# --- Algorithm 1 ----------------------------------------------------------------------------------------------

def _small_ace_classifier():
    seed_everything(0)
    return build_classifier("ace", 1, 10, width=8, solver={"method": "rk4", "step_size": 0.5, "gradient": "backprop"})


def _snapshot(params):
    return [p.detach().clone() for p in params]


def test_attention_parameters_are_exactly_g():
    model = _small_ace_classifier()
    main, attention = split_parameters(model)
    body = model.body[0] if isinstance(model.body, nn.Sequential) else model.body
    assert isinstance(body, ACEConvBody)
    assert {id(p) for p in attention} == {id(p) for p in body.field.g.parameters()}
    assert {id(p) for p in main} | {id(p) for p in attention} == {id(p) for p in model.parameters()}
    assert not {id(p) for p in main} & {id(p) for p in attention}
    assert all(any(p is q for q in main) for p in body.q.parameters())  # q is one of "the other parameters"
    assert attention_parameters(build_classifier("odenet", 1, 10, width=8)) == []


def _alternating(model, lam=1e-3, norm=2, optimizer="adam", lr=1e-2):
    main, attention = split_parameters(model)
    return Alternating(main, attention, optimizer=optimizer, lr=lr,
                       penalty=lambda: lam * attention_penalty(attention, norm))


def test_each_phase_leaves_the_frozen_half_bit_identical():
    model = _small_ace_classifier()
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    strategy = _alternating(model)
    main, attention = split_parameters(model)
    loss = lambda: nn.functional.cross_entropy(model(x), y)
    for _ in range(2):
        main0, att0 = _snapshot(main), _snapshot(attention)
        strategy.phases[0].step(loss)
        assert all(torch.equal(p, q) for p, q in zip(attention, att0)), "phase h changed θ_g"
        assert any(not torch.equal(p, q) for p, q in zip(main, main0)), "phase h trained nothing"
        main1, att1 = _snapshot(main), _snapshot(attention)
        strategy.phases[1].step(loss)
        assert all(torch.equal(p, q) for p, q in zip(main, main1)), "phase a changed θ_f or the others"
        assert any(not torch.equal(p, q) for p, q in zip(attention, att1)), "phase a trained nothing"
    assert all(p.requires_grad for p in model.parameters())  # the freezing is undone


def test_phase_a_minimises_the_penalised_loss_of_eq6():
    model = _small_ace_classifier()
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    strategy = _alternating(model, lam=10.0, norm=1, optimizer="sgd", lr=1e-3)
    _, attention = split_parameters(model)
    before = float(attention_penalty(attention, 1).detach())
    for _ in range(3):
        strategy.phases[1].step(lambda: nn.functional.cross_entropy(model(x), y))
    assert float(attention_penalty(attention, 1).detach()) < before  # a large λ shrinks ‖θ_g‖_1


def test_penalty_norms_and_errors():
    params = [torch.tensor([3.0, -4.0]), torch.tensor([[12.0]])]
    assert float(attention_penalty(params, 1)) == 19.0
    assert float(attention_penalty(params, 2)) == 13.0
    with pytest.raises(ValueError, match="norm must be 1 or 2"):
        attention_penalty(params, 3)
    with pytest.raises(ValueError, match="no attention parameters"):
        attention_penalty([], 2)
    with pytest.raises(ValueError, match="two non-empty sets"):
        _alternating(build_classifier("odenet", 1, 10, width=8))


def test_attention_health_sees_a_collapsed_attention_ode():
    """θ_g shrunk to zero: the norm says so, and the attention weights no longer move over the interval."""
    seed_everything(0)
    model = LatentODEModel(4, latent=3, rec_hidden=4, units=6, attention="ace",
                           solver=SolverConfig(method="rk4", step_size=0.25, gradient="backprop"))
    values, mask, times = torch.rand(5, 5, 4), torch.ones(5, 5, 4), torch.linspace(0, 1, 5)
    alive = attention_health(model, model.attention_weights(values, mask, times))
    assert alive["theta_g_norm"] > 0.1 and alive["attention_movement"] > 1e-4
    with torch.no_grad():
        for p in attention_parameters(model):
            p.zero_()
    dead = attention_health(model, model.attention_weights(values, mask, times))
    assert dead["theta_g_norm"] == 0.0 and dead["attention_movement"] == 0.0
    assert attention_health(build_classifier("odenet", 1, 10, width=8)) == {"theta_g_norm": 0.0}


def test_algorithm_1_through_the_one_loop_keeps_the_best_validated_epoch():
    model = _small_ace_classifier()
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    scores = iter([0.5, 0.9, 0.1])
    saved = {}

    def validate(m):
        score = next(scores)
        saved[score] = {k: v.clone() for k, v in m.state_dict().items()}
        return {"validation_accuracy": score}

    result = fit(model, lambda k: [0, 1], lambda m, b: nn.functional.cross_entropy(m(x[b * 4:(b + 1) * 4]),
                                                                                  y[b * 4:(b + 1) * 4]),
                 _alternating(model), epochs=3, validate=validate, progress=False)
    assert result.best_epoch == 2 and result.best_score == 0.9 and len(result.history) == 3
    assert {"train_h_loss", "train_a_loss", "train_loss", "validation_accuracy"} <= set(result.history[0])
    assert result.history[0]["steps"] == 4  # a pass of L_h steps, then a pass of L_a steps (Algorithm 1)
    assert all(torch.equal(v, saved[0.9][k]) for k, v in model.state_dict().items())


# --- the models -------------------------------------------------------------------------------------------------

def test_ace_odenet_parameter_counts_follow_the_text():
    """f'' = Table 1 without its second layer, g' = Table 1, q = two convolutions: 0.32M for every data set."""
    def parts(c, k=3):
        field = 2 * ((c + 1) * k * k * c + c) + 6 * c  # Table 1 (= ConvODEFunc)
        reduced = (c + 1) * k * k * c + c + 4 * c  # without its second layer
        q = 2 * (c * k * k * c + c) + 2 * c
        return field, reduced, q

    field, reduced, q = parts(64)
    assert count_parameters(ConvODEFunc(64)) == field and count_parameters(ReducedConvODEFunc(64)) == reduced
    for channels, odenet in ((1, 208_266), (3, 209_418)):
        ace = count_parameters(build_classifier("ace", channels, 10))
        assert count_parameters(build_classifier("odenet", channels, 10)) == odenet
        assert ace == odenet - field + reduced + field + q
    assert count_parameters(build_classifier("ace", 1, 10)) == 320_010  # the paper's MNIST figure is 0.28M
    assert count_parameters(build_classifier("ace", 3, 10)) == 321_162  # SVHN: 0.32M, as in Table 3


def test_ace_body_solves_with_adjoint_and_counts_evaluations():
    seed_everything(0)
    model = build_classifier("ace", 1, 10, width=8, solver={"method": "rk4", "step_size": 0.25})
    assert model.body.block.solver.gradient == "adjoint"  # the registered default (Sec. 4.1)
    x = torch.randn(3, 1, 28, 28)
    backward_counted(model(x).sum(), model.counter)
    counts = model.counter.counts
    assert counts["forward"] == 16 and counts["backward"] > 0
    h, attention = model.body.attention_trajectory(model.stem(x), torch.linspace(0, 1, 3))
    assert h.shape == (3, 3, 8, 6, 6) and attention.shape == h.shape and (attention > 0).all() and (attention < 1).all()


def test_initial_attention_variants():
    init = CorrelationInitialAttention(3)
    h = torch.randn(20, 3)
    a_train = init(h)
    assert a_train.shape == (20, 3, 3) and torch.allclose(a_train[0], correlation_matrix(h))
    init.eval()
    alone = init(h[:1])  # evaluation uses the running correlation: a patient's attention ignores its batch
    assert torch.allclose(alone[0], a_train[0]) and torch.allclose(init(h[:5])[0], alone[0])
    assert torch.equal(CorrelationInitialAttention(3).eval()(h[:1])[0], torch.eye(3))  # never trained: batch, of one
    learned = LearnedInitialAttention(3)
    assert learned(h).shape == (20, 3, 3) and count_parameters(learned) == 3 * 9 + 9
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        init(torch.randn(4, 2))
    with pytest.raises(ValueError, match="momentum"):
        CorrelationInitialAttention(3, momentum=0.0)


@pytest.mark.parametrize(("attention", "encoder"), [("none", "gru"), ("ace", "gru"), ("learned", "odernn"),
                                                    ("fixed", "gru"), ("none", "odernn"), ("ace", "odernn")])
def test_latent_ode_model_shapes_and_training_step(attention, encoder):
    seed_everything(0)
    model = LatentODEModel(5, latent=4, rec_hidden=6, units=8, attention=attention, encoder=encoder,
                           solver=SolverConfig(method="rk4", step_size=0.25, gradient="backprop"))
    values, mask = torch.rand(6, 5, 5), (torch.rand(6, 5, 5) < 0.5).float()
    times, labels = torch.linspace(0, 1, 5), torch.tensor([0, 1, 0, 1, 0, 0])
    recon, logit = model(values, mask, times)
    assert recon.shape == (6, 5, 5) and logit.shape == (6,)
    visible = hold_out(mask, 0.3, torch.Generator().manual_seed(0))
    assert (visible <= mask).all() and visible.sum() < mask.sum()
    strategy = _alternating(model) if attention in ("ace", "learned") else Joint(
        make_optimizer(model.parameters(), "adam", 1e-2))
    out = strategy.phases[0].step(lambda: series_loss(model, values, mask, visible, labels, times))
    assert np.isfinite(out)
    metrics = evaluate_series(model, values, mask, visible, labels, times)
    assert 0 <= metrics["auc"] <= 1 and metrics["mse"] >= 0 and metrics["loss"] > 0
    with pytest.raises(ValueError, match="one time per step"):
        model(values, mask, times[:3])
    with pytest.raises(ValueError, match=r"\(B, T, 5\)"):
        model(values[..., :4], mask[..., :4], times)


def test_ode_rnn_encoder_is_a_gru_that_skips_empty_bins_when_its_flow_is_still():
    """With f_enc = 0 the ODE-RNN is a GRU cell read backwards that leaves a patient's state alone in a bin with
    nothing observed; with f_enc != 0 the state also moves between the bins (backwards in time)."""
    seed_everything(0)
    encoder = ODERNNEncoder(6, 5, units=7)
    x, times = torch.randn(4, 6, 6), torch.tensor([0.0, 0.1, 0.3, 0.35, 0.8, 1.0])
    observed = torch.rand(4, 6) < 0.6
    observed[0] = False  # a patient with nothing at all
    moving = encoder(x, observed, times)
    with torch.no_grad():
        for p in encoder.field.parameters():
            p.zero_()
    h = torch.zeros(4, 5)
    for i in reversed(range(6)):
        h = torch.where(observed[:, i:i + 1], encoder.cell(x[:, i], h), h)
    still = encoder(x, observed, times)
    torch.testing.assert_close(still, h)
    assert still[0].abs().max() == 0 and (moving - still).abs().max() > 1e-3


def test_augmented_latent_ode_starts_its_extra_dimensions_at_zero():
    seed_everything(0)
    model = LatentODEModel(5, latent=4, rec_hidden=6, units=8, attention="none", encoder="odernn", augment=3)
    values, mask, times = torch.rand(2, 4, 5), torch.ones(2, 4, 5), torch.linspace(0, 1, 4)
    h0 = model.encode(values, mask, times)
    assert h0.shape == (2, 7) and h0[:, 4:].abs().max() == 0 and h0[:, :4].abs().max() > 0
    assert model.readout.in_features == 7 and model(values, mask, times)[0].shape == (2, 4, 5)
    with pytest.raises(ValueError, match="only without attention"):
        LatentODEModel(5, attention="ace", augment=5)
    with pytest.raises(ValueError, match="augment must be"):
        LatentODEModel(5, attention="none", augment=-1)
    with pytest.raises(ValueError, match="encoder must be one of"):
        LatentODEModel(5, encoder="lstm")
    with pytest.raises(ValueError, match="needs the grid times"):
        model.encode(values, mask)


def test_latent_ode_model_rejects_unknown_attention():
    with pytest.raises(ValueError, match="attention must be one of"):
        LatentODEModel(5, attention="softmax")
    with pytest.raises(ValueError, match="held-out fraction"):
        hold_out(torch.ones(2, 2), 1.0, torch.Generator())


def test_physionet_experiment_resumes_and_skips_finished_runs(tmp_path):
    from nodelib import datasets

    if not datasets.available("physionet2012"):
        pytest.skip("PhysioNet 2012 is not under the data root")
    import json

    from nodelib.experiments.__main__ import main

    settings = ["--patients", "60", "--epochs", "1", "--quantization", "24", "--method", "rk4", "--variants",
                "ace-fixed"]
    where = ["--device", "cpu", "--no-progress", "--out", str(tmp_path)]
    assert main(["run", "physionet-ace", *settings, "--seeds", "0", *where]) == 0
    out = tmp_path / "physionet-ace" / "result.json"
    first = json.loads(out.read_text())
    assert first["complete"] and first["summary"]["ace-fixed"]["test_auc_at_best"]["n"] == 1
    assert first["data"]["patients"] == 60 and first["data"]["deaths_validation"] >= 1  # stratified
    assert main(["run", "physionet-ace", *settings, "--seeds", "0", *where, "--resume"]) == 0  # nothing to redo
    assert json.loads(out.read_text())["runs"] == first["runs"]
    assert main(["run", "physionet-ace", *settings, "--seeds", "0,1", *where, "--resume"]) == 0  # one more seed
    assert [r["seed"] for r in json.loads(out.read_text())["runs"]] == [0, 1]
    with pytest.raises(SystemExit):  # other settings: refused
        main(["run", "physionet-ace", *settings, "--lam", "0.5", "--seeds", "0", *where, "--resume"])


def test_best_setting_picks_each_familys_best_validation_auc():
    from nodelib.errors import RunError
    from nodelib.experiments.ace_physionet import PhysioNetComparison, best_setting, parse_variant

    config = PhysioNetComparison(lr_latent=0.01)
    assert parse_variant("latentode", config).lr == 0.01 and parse_variant("ace", config).lr == config.lr
    assert parse_variant("latentode-lr0.5", config).lr == 0.5  # a variant's own rate wins
    runs = [{"variant": name, "validation_auc_at_best": auc,
             **{k: v for k, v in vars(parse_variant(name, PhysioNetComparison())).items()}}
            for name, auc in (("latentode-lr0.001", 0.80), ("latentode-lr0.01", 0.82),
                              ("ace-lr0.001-lam0.1", 0.79), ("ace-lr0.001-lam0", 0.83),
                              ("ace-lr0.01-lam0.001", 0.83), ("ace-joint-lr0.01-lam0", 0.9),
                              ("latentode-aug-lr0.1", 0.95))]
    chosen = best_setting({"runs": runs})
    assert chosen["latentode"]["lr"] == 0.01
    assert (chosen["ace"]["lr"], chosen["ace"]["lam"]) == (0.001, 0.0)  # a tie keeps the first in the grid
    with pytest.raises(RunError, match="latentode"):
        best_setting({"runs": runs[2:4]})


def test_the_registered_comparison_uses_the_recorded_selections_choice():
    """physionet-ace's learning rates and λ are what physionet-ace-select chose on validation, not typed apart."""
    from nodelib.experiments import load_result, registry
    from nodelib.experiments.ace_physionet import best_setting

    selection = load_result("physionet-ace-select_cpu")
    declared = selection["config"]["variants"]
    assert sorted(r["variant"] for r in selection["runs"]) == sorted(declared), "the selection grid is incomplete"
    assert not any(r["still_improving"] for r in selection["runs"] if r["variant"].startswith("ace"))
    chosen = best_setting(selection)
    config = registry.get("physionet-ace").configuration()
    assert (config.lr, config.lam) == (chosen["ace"]["lr"], chosen["ace"]["lam"])
    assert config.lr_latent == chosen["latentode"]["lr"]


def test_the_recorded_comparison_reports_each_runs_best_validation_epoch():
    """physionet-ace_cpu, the runs chapter 6 judges: each run's reported epoch is its best validation AUC, and its
    stop the patience or the epoch limit. (That the record is complete, from a clean revision, with the registered
    settings and claims, every variant and seed, and a summary that follows from the runs, tests/test_sweep.py
    checks for every shipped sweep.)"""
    from nodelib.experiments import load_result, registry

    recorded = load_result("physionet-ace_cpu")
    config = registry.get("physionet-ace").configuration()
    for r in recorded["runs"]:
        history = r["history"]
        best = max(history, key=lambda h: h["validation_auc"])  # the first of equal scores
        assert r["best_epoch"] == best["epoch"] and r["test_auc_at_best"] == best["test_auc"]
        assert r["epochs"] == len(history) and (r["epochs"] - r["best_epoch"] == config.patience
                                                or r["epochs"] == config.epochs)
