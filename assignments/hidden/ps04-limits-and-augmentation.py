"""Hidden tests of problem set 4: order preservation, and augmentation (nodelib.augment is switched off)."""
import torch
from spec import assert_close, forbid, hidden

forbid("q2_augment", "nodelib.augment")


def truth(out, what="the result"):
    if isinstance(out, bool):
        return out
    if isinstance(out, torch.Tensor) and out.dtype == torch.bool and out.numel() == 1:
        return bool(out)
    raise AssertionError(f"{what} should be True or False, got {out!r}")


@hidden("q1_order_kept", 1)
def test_increasing_and_reversing_maps(student):
    """x -> x^3 keeps the order of unsorted points, x -> -x does not."""
    x = torch.tensor([2.0, -1.0, 0.5, 3.0])
    assert truth(student("order_preserved", x, x**3)) is True, "x^3 keeps the order"
    assert truth(student("order_preserved", x, -x)) is False, "-x reverses it"


@hidden("q1_order_kept", 1)
def test_pairs_that_are_not_neighbours(student):
    """Every pair counts, not only neighbours (in the order given or after sorting)."""
    assert truth(student("order_preserved", torch.tensor([0.0, 2.0, 1.0]), torch.tensor([0.0, 3.0, -1.0]))) is False
    x = torch.tensor([2.0, -1.0, 0.5, 3.0])
    assert truth(student("order_preserved", x, torch.tensor([1.0, 0.0, 2.0, 1.5]))) is False


def rk4_flow(x, steps=100):
    f = lambda t, z: torch.sin(3 * z) + t
    h, z = 1.0 / steps, x.clone()
    for k in range(steps):
        t = k * h
        k1 = f(t, z)
        k2 = f(t + h / 2, z + h / 2 * k1)
        k3 = f(t + h / 2, z + h / 2 * k2)
        k4 = f(t + h, z + h * k3)
        z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return z


@hidden("q1_order_kept", 1)
def test_a_flow_map(student):
    """The time-1 map of a one-dimensional ODE keeps the order of 9 scattered points."""
    torch.manual_seed(4)
    x = torch.randn(9) * 2
    assert truth(student("order_preserved", x, rk4_flow(x))) is True, "the flow keeps the order"
    assert truth(student("order_preserved", x, -rk4_flow(x))) is False, "minus the flow reverses it"


@hidden("q2_augment", 1)
def test_images(student):
    """(B, C, H, W) maps get p zero channels after their own."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 5)
    assert_close(student("my_augment", x, 2), torch.cat([x, torch.zeros(2, 2, 5, 5)], dim=1), atol=0)


@hidden("q2_augment", 1)
def test_vectors(student):
    """(B, d) vectors get p zero features after their own."""
    x = torch.arange(12.0).reshape(4, 3)
    assert_close(student("my_augment", x, 5), torch.cat([x, torch.zeros(4, 5)], dim=1), atol=0)


@hidden("q2_augment", 1)
def test_zero_returns_the_input(student):
    """p = 0 returns x itself (the same object); p = 1 adds one zero feature."""
    x = torch.ones(3, 2)
    assert student("my_augment", x, 0) is x, "with p = 0 the function should return x itself"
    assert_close(student("my_augment", x, 1), torch.cat([x, torch.zeros(3, 1)], dim=1), atol=0)
