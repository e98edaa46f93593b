"""Hidden tests of problem set 6: pairwise attention and the correlation matrix (nodelib.ace is switched off)."""
import torch
from spec import assert_close, forbid, hidden

forbid("q1_pairwise", "nodelib.ace")
forbid("q2_correlation", "nodelib.ace")


def attend_reference(h, a):
    weights = torch.exp(a - a.amax(dim=-1, keepdim=True))
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return (weights * h[:, None, :]).sum(dim=-1)


@hidden("q1_pairwise", 1)
def test_random_batch(student):
    """A batch of 4 vectors of dimension 5 with random logits."""
    torch.manual_seed(0)
    h, a = torch.randn(4, 5), torch.randn(4, 5, 5)
    assert_close(student("attend", h, a), attend_reference(h, a), atol=1e-12)


@hidden("q1_pairwise", 1)
def test_each_row_attends_to_itself(student):
    """Large logits on the diagonal: h' = h; zero logits: every entry the mean of h."""
    torch.manual_seed(1)
    h = torch.randn(3, 4)
    assert_close(student("attend", h, torch.eye(4).expand(3, 4, 4) * 50.0), h, atol=1e-10)
    assert_close(student("attend", h, torch.zeros(3, 4, 4)), h.mean(dim=1, keepdim=True).expand(3, 4), atol=1e-12)


@hidden("q1_pairwise", 1)
def test_softmax_over_rows(student):
    """The softmax runs over each row of a (over j in a_ij), not over columns."""
    h = torch.tensor([[1.0, 10.0]])
    a = torch.tensor([[[0.0, 3.0], [0.0, 0.0]]])
    assert_close(student("attend", h, a), attend_reference(h, a), atol=1e-12)


def correlation_reference(h):
    centred = h - h.mean(dim=0)
    std = centred.pow(2).mean(dim=0).sqrt()
    return (centred.T @ centred) / h.shape[0] / (std[:, None] * std[None, :])


@hidden("q2_correlation", 1)
def test_random_columns(student):
    """50 samples of 4 dimensions."""
    torch.manual_seed(1)
    h = torch.randn(50, 4) * torch.tensor([1.0, 3.0, 0.2, 5.0]) + 2.0
    assert_close(student("correlation", h), correlation_reference(h), atol=1e-10)


@hidden("q2_correlation", 1)
def test_perfect_anticorrelation(student):
    """A column that is -2 times another plus 1 has correlation -1 with it."""
    torch.manual_seed(2)
    h = torch.randn(30, 3)
    h[:, 2] = -2 * h[:, 0] + 1
    c = student("correlation", h)
    assert_close(c, correlation_reference(h), atol=1e-10)
    assert abs(float(c[0, 2]) + 1) < 1e-10


@hidden("q2_correlation", 1)
def test_two_samples(student):
    """With B = 2 every correlation is +1 or -1."""
    h = torch.tensor([[1.0, 5.0, -2.0], [2.0, 3.0, 0.0]])
    assert_close(student("correlation", h), correlation_reference(h), atol=1e-12)
