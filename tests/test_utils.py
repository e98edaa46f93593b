"""nodelib.utils: seeding reproduces, device selection refuses what is not there."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nodelib import seed_everything
from nodelib.utils import count_parameters, get_device


def test_seed_everything_reproduces_torch_and_numpy():
    seed_everything(123)
    a = (torch.randn(5), np.random.rand(3))
    seed_everything(123)
    b = (torch.randn(5), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "7", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed must be an integer"):
        seed_everything(bad)


def test_get_device():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device().type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="unknown device"):
        get_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            get_device("cuda")


def test_count_parameters():
    lin = torch.nn.Linear(3, 4)
    assert count_parameters(lin) == 16
    lin.bias.requires_grad_(False)
    assert count_parameters(lin) == 12
    assert count_parameters(lin, trainable_only=False) == 16
