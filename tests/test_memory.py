"""nodelib.memory: the saved-tensor instrument counts each storage once."""
from __future__ import annotations

import torch

from nodelib.memory import saved_tensor_bytes


def test_two_views_of_one_storage_are_counted_once():
    x = torch.randn(1000, requires_grad=True)

    def product_of_halves():
        y = x * 2.0  # one fresh 4,000-byte storage
        return (y[:500] * y[500:]).sum()  # mul saves both halves: two views of y's storage

    _, nbytes = saved_tensor_bytes(product_of_halves)
    assert nbytes == 4000


def test_the_same_tensor_saved_twice_counts_once():
    x = torch.randn(256, requires_grad=True)
    _, once = saved_tensor_bytes(lambda: (x * x).sum())  # mul saves x for both operands
    assert once == 256 * 4
    _, exp_out = saved_tensor_bytes(lambda: (x * 1.0).exp().sum())  # exp saves its output
    assert exp_out == 256 * 4
