"""Hidden tests of problem set 8: the degree-1 B-spline basis and the Poisson likelihood (nodelib.gode is off)."""
import torch
from spec import assert_close, assert_number, forbid, hidden

forbid("q1_hat_basis", "nodelib.gode")
forbid("q2_poisson", "nodelib.gode")


def hats(t, m):
    nodes = torch.arange(m, dtype=t.dtype) / (m - 1)
    return torch.clamp(1 - (t[:, None] - nodes[None, :]).abs() * (m - 1), min=0)


@hidden("q1_hat_basis", 1)
def test_many_sizes(student):
    """37 times on [0, 1] for m = 2, 4 and 8."""
    t = torch.linspace(0, 1, 37)
    for m in (2, 4, 8):
        assert_close(student("hat_basis", t, m), hats(t, m), atol=1e-12, what=f"the basis for m = {m}")


@hidden("q1_hat_basis", 1)
def test_values_between_nodes(student):
    """m = 5 (nodes 0, 1/4, 1/2, ...): at t = 0.3, B_1 = 0.8 and B_2 = 0.2."""
    assert_close(student("hat_basis", torch.tensor([0.3, 0.9]), 5),
                 torch.tensor([[0.0, 0.8, 0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 0.4, 0.6]]), atol=1e-12)


@hidden("q1_hat_basis", 1)
def test_partition_of_unity(student):
    """At 50 random times the m = 6 basis sums to one, every entry in [0, 1]."""
    torch.manual_seed(0)
    t = torch.rand(50)
    out = student("hat_basis", t, 6)
    assert_close(out, hats(t, 6), atol=1e-12)
    assert bool((out.sum(1) - 1).abs().max() < 1e-12)


@hidden("q2_poisson", 1)
def test_against_the_distribution(student):
    """20 counts around 3: the mean of -log p(y) under Poisson(e^eta)."""
    torch.manual_seed(0)
    eta, y = torch.randn(20), torch.poisson(torch.full((20,), 3.0))
    expected = -torch.distributions.Poisson(torch.exp(eta)).log_prob(y).mean()
    assert_number(student("poisson_nll", eta, y), float(expected), atol=1e-10)


@hidden("q2_poisson", 1)
def test_a_mean_not_a_sum(student):
    """The mean over the batch, not the sum."""
    eta, y = torch.tensor([0.1, -0.5, 1.2, 0.0, 2.0]), torch.tensor([0.0, 1.0, 4.0, 2.0, 7.0])
    expected = (torch.exp(eta) - y * eta + torch.lgamma(y + 1)).mean()
    assert_number(student("poisson_nll", eta, y), float(expected), atol=1e-12)


@hidden("q2_poisson", 1)
def test_large_counts(student):
    """Counts of 50 and 120, where log y! is large."""
    eta, y = torch.tensor([3.9, 4.8]), torch.tensor([50.0, 120.0])
    expected = -torch.distributions.Poisson(torch.exp(eta)).log_prob(y).mean()
    assert_number(student("poisson_nll", eta, y), float(expected), atol=1e-9)
