"""nodelib.nfe: one evaluation counter, by phase, used by every part of nodelib."""
from __future__ import annotations

import pytest
import torch

from nodelib import odeint
from nodelib.adjoint import AdjointStats, odeint_adjoint
from nodelib.blocks import MLPField, ODEBlock
from nodelib.nfe import EvalCounter, NFECounter, backward_counted


def test_phases_count_separately_and_reset_returns_the_counts():
    counter = EvalCounter()
    counter.add()
    with counter.phase("backward"):
        counter.add(3)
        with counter.phase("eval"):
            counter.add(2)
        counter.add()
    counter.add()
    assert counter.counts == {"forward": 2, "backward": 4, "eval": 2} and counter.total == 8
    assert counter.reset() == {"forward": 2, "backward": 4, "eval": 2}
    assert counter.total == 0 and counter.current_phase == "forward"


def test_phase_is_restored_after_an_exception():
    counter = NFECounter(MLPField(2))
    with pytest.raises(RuntimeError):
        with counter.phase("backward"):
            raise RuntimeError("a failed backward pass")
    counter(torch.tensor(0.0), torch.zeros(1, 2))
    assert counter.forward_nfe == 1 and counter.backward_nfe == 0


def test_wrapped_function_counts_calls():
    counter = EvalCounter()
    f = counter.wrap(lambda t, y: -y)
    _, stats = odeint(f, torch.ones(2), [0.0, 1.0], method="rk4", step_size=0.25, return_stats=True)
    assert counter.total == stats.nfe == 16


def test_adjoint_stats_are_an_eval_counter_filled_by_phase():
    field = MLPField(2, hidden=4).double()
    stats = AdjointStats()
    ys = odeint_adjoint(field, torch.ones(3, 2, dtype=torch.float64), [0.0, 1.0], method="rk4", step_size=0.1,
                        stats=stats)
    assert isinstance(stats, EvalCounter) and stats.forward_nfe == 40 and stats.backward_nfe == 0
    ys[-1].sum().backward()
    assert stats.backward_nfe == 40


def test_backward_counted_puts_adjoint_evaluations_in_the_backward_phase():
    counter = NFECounter(MLPField(2, hidden=4))
    block = ODEBlock(counter, method="rk4", step_size=0.5, gradient="adjoint")
    out = block(torch.randn(3, 2))
    backward_counted(out.sum(), counter)
    assert counter.counts == {"forward": 8, "backward": 8}
    assert block.counter.counts == {"forward": 16, "backward": 0}  # the block counted outside the phase
    backward_counted(block(torch.randn(3, 2)).sum(), block.counter)
    assert block.counter.backward_nfe == 8 and block.nfe == 32
