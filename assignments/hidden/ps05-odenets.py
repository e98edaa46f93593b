"""Hidden tests of problem set 5: a confusion matrix, and top-k accuracy."""
import torch
from spec import assert_number, hidden


def counts(pred, y, n):
    matrix = torch.zeros(n, n, dtype=torch.long)
    for i, j in zip(y.tolist(), pred.tolist()):
        matrix[i, j] += 1
    return matrix


def integer_matrix(out, n):
    assert isinstance(out, torch.Tensor) and out.shape == (n, n), f"expected an {n} x {n} tensor, got {out!r}"
    assert not out.is_floating_point() and not out.is_complex(), f"expected integer counts, got {out.dtype}"
    return out


@hidden("q1_confusion", 1)
def test_random_labels(student):
    """200 random labels and predictions over 5 classes."""
    torch.manual_seed(0)
    y, pred = torch.randint(0, 5, (200,)), torch.randint(0, 5, (200,))
    assert torch.equal(integer_matrix(student("confusion", pred, y, 5), 5).long(), counts(pred, y, 5)), "wrong counts"


@hidden("q1_confusion", 1)
def test_rows_are_true_classes(student):
    """Entry [i, j] counts true class i predicted as j (not the transpose)."""
    out = integer_matrix(student("confusion", torch.tensor([1, 1, 2]), torch.tensor([0, 0, 1]), 3), 3)
    assert torch.equal(out.long(), torch.tensor([[0, 2, 0], [0, 0, 1], [0, 0, 0]])), "rows should be the true classes"


@hidden("q1_confusion", 1)
def test_classes_that_never_occur(student):
    """Classes absent from both tensors still get their (zero) row and column."""
    y, pred = torch.tensor([0, 2, 2, 0]), torch.tensor([0, 2, 0, 0])
    assert torch.equal(integer_matrix(student("confusion", pred, y, 6), 6).long(), counts(pred, y, 6))


def topk_reference(logits, y, k):
    top = logits.topk(k, dim=1).indices
    return float((top == y[:, None]).any(dim=1).double().mean())


@hidden("q2_topk", 1)
def test_each_k(student):
    """Three examples, k = 1, 2, 3."""
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [2.0, 3.0, 1.0]])
    y = torch.tensor([1, 0, 2])
    for k, expected in ((1, 0.0), (2, 1 / 3), (3, 1.0)):
        assert_number(student("top_k_accuracy", logits, y, k), expected, atol=1e-12, what=f"top-{k} accuracy")


@hidden("q2_topk", 1)
def test_random_logits(student):
    """50 examples over 10 classes, k = 3, as a Python float."""
    torch.manual_seed(1)
    logits, y = torch.randn(50, 10), torch.randint(0, 10, (50,))
    out = student("top_k_accuracy", logits, y, 3)
    assert isinstance(out, float), f"expected a Python float, got {type(out).__name__}"
    assert_number(out, topk_reference(logits, y, 3), atol=1e-12)


@hidden("q2_topk", 1)
def test_k_of_all_classes(student):
    """k = the number of classes: every example counts (and k = 1 is plain accuracy)."""
    torch.manual_seed(2)
    logits, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    assert_number(student("top_k_accuracy", logits, y, 4), 1.0, atol=1e-12, what="with k = 4 the accuracy")
    assert_number(student("top_k_accuracy", logits, y, 1), topk_reference(logits, y, 1), atol=1e-12,
                  what="with k = 1 the accuracy")
