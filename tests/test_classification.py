"""Chapter 5's architectures: the parameter counts the seeds state, shapes, NFE and clear errors."""
from __future__ import annotations

import pytest
import torch

from nodelib.classification import build_classifier
from nodelib.nfe import backward_counted
from nodelib.utils import count_parameters


@pytest.mark.parametrize(
    "arch,in_channels,n_classes,dims,expected",
    [
        ("resnet", 1, 5, 1, 182_853),  # Facci & Zurlo 2022, Fig. 16
        ("odenet", 1, 5, 1, 59_333),  # Facci & Zurlo 2022, Fig. 17
        ("resnet", 1, 10, 2, 576_778),  # torchdiffeq's MNIST example, ResNet
        ("odenet", 1, 10, 2, 208_266),  # torchdiffeq's MNIST example, ODE-Net
        ("rknet", 1, 10, 2, 208_266),
    ],
)
def test_parameter_counts_stated_by_the_sources(arch, in_channels, n_classes, dims, expected):
    model = build_classifier(arch, in_channels, n_classes, dims=dims)
    assert count_parameters(model) == expected


@pytest.mark.parametrize("in_channels", [1, 3])
def test_image_models_match_the_rounded_counts_of_jhin_et_al(in_channels):
    # Jhin et al. 2021, Tables 2-4: ResNet 0.58M, RK-Net and ODE-Net 0.21M, augmented ODE-Net 0.22M.
    stated = {"resnet": 0.58, "rknet": 0.21, "odenet": 0.21, "augmented": 0.22}
    for arch, millions in stated.items():
        assert round(count_parameters(build_classifier(arch, in_channels, 10)) / 1e6, 2) == millions


def test_shapes_through_the_stages():
    mnist = build_classifier("odenet", 1, 10)
    assert mnist.stem(torch.zeros(2, 1, 28, 28)).shape == (2, 64, 6, 6)  # Jhin et al. Table 1: 6x6x64
    cifar = build_classifier("resnet", 3, 10)
    assert cifar.stem(torch.zeros(2, 3, 32, 32)).shape == (2, 64, 7, 7)  # Table 12: 7x7x64
    ecg = build_classifier("odenet", 1, 5, dims=1)
    assert ecg(torch.zeros(3, 1, 187)).shape == (3, 5)
    digits = build_classifier("augmented", 1, 10, width=32, stem_kind="small")
    assert digits.features(torch.zeros(2, 1, 8, 8)).shape == (2, 37, 4, 4)


def test_rk_net_counts_four_evaluations_per_step():
    model = build_classifier("rknet", 1, 10, width=32, stem_kind="small")  # RK4, step 0.25 on [0, 1]
    logits = model(torch.randn(4, 1, 8, 8))
    assert model.counter.forward_nfe == 16
    with model.counter.phase("backward"):
        logits.sum().backward()
    assert model.counter.backward_nfe == 16  # the adjoint walks the same grid back


def test_one_counter_counts_each_evaluation_once_by_phase():
    """The block owns the counter the classifier reports: forward evaluations in the forward pass, the adjoint's
    in the backward pass, and the two add up to every call of the field."""
    model = build_classifier("odenet", 1, 10, width=8, stem_kind="small")
    calls = []
    field = model.body[0].field
    original = field.forward
    field.forward = lambda t, x: calls.append(1) or original(t, x)
    backward_counted(model(torch.randn(3, 1, 8, 8)).sum(), model.counter)
    counts = model.counter.counts
    assert model.counter is model.body[0].counter
    assert counts["forward"] > 0 and counts["backward"] > 0 and counts["forward"] + counts["backward"] == len(calls)


def test_odenet_forward_matches_a_direct_torchdiffeq_solve():
    import torchdiffeq

    torch.manual_seed(1)
    model = build_classifier("odenet", 1, 10, width=32, stem_kind="small", solver={"adjoint": False, "rtol": 1e-6, "atol": 1e-6})
    x = torch.randn(3, 1, 8, 8)
    h = model.stem(x)
    field = model.body[0].field
    direct = torchdiffeq.odeint(field, h, torch.tensor([0.0, 1.0]), rtol=1e-6, atol=1e-6)[-1]
    torch.testing.assert_close(model.features(x), direct)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(arch="densenet"), "no classifier body called 'densenet'; did you mean resnet"),
        (dict(arch="vgg"), "no classifier body called 'vgg'; registered: ace, augmented, gode, odenet, resnet, rknet"),
        (dict(arch="odenett"), "did you mean odenet"),
        (dict(dims=3), "dims must be 1"),
        (dict(n_classes=1), "at least 2"),
        (dict(width=0), "width must be a positive integer"),
        (dict(stem_kind="big"), "stem must be one of"),
        (dict(arch="resnet", solver={"method": "rk4"}), "has no ODE solver"),
        (dict(t1=-1.0), "t1 must be a positive"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = dict(arch="odenet", in_channels=1, n_classes=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_classifier(**args)


def test_wrong_input_shape_says_what_was_expected():
    model = build_classifier("resnet", 3, 10)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) with C = 3"):
        model(torch.zeros(2, 1, 32, 32))
    ecg = build_classifier("resnet", 1, 5, dims=1)
    with pytest.raises(ValueError, match=r"\(B, C, L\)"):
        ecg(torch.zeros(2, 187))
