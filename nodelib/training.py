"""The training loop shared by the chapters: seeded, device-agnostic, with a progress bar and a history.

The loop is deliberately small. A chapter supplies a function that computes the loss of one mini-batch; the
loop runs the optimizer, records the loss and the wall time, calls back for evaluations and snapshots, and
returns a :class:`History`.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Optional

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._impl.checks import check_positive_int


@dataclass
class History:
    """What happened during training: per-step loss and time, plus whatever the callbacks recorded."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time since the start, at each step
    evals: dict[str, list[float]] = field(default_factory=dict)
    eval_steps: list[int] = field(default_factory=list)
    snapshots: list[tuple[int, Any]] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


def train(
    loss_fn: Callable[[int], Tensor],
    optimizer: torch.optim.Optimizer,
    n_steps: int,
    *,
    eval_fn: Optional[Callable[[], dict[str, float]]] = None,
    eval_every: int = 0,
    snapshot_fn: Optional[Callable[[], Any]] = None,
    snapshot_every: int = 0,
    clip_grad_norm: Optional[float] = None,
    backward_context: Optional[Callable[[], ContextManager[Any]]] = None,
    on_step_end: Optional[Callable[[int], None]] = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Run ``n_steps`` optimizer steps on ``loss_fn(step)`` and return the :class:`History`.

    Args:
        loss_fn: computes the loss of step ``step`` (draw the mini-batch inside, from a seeded generator).
        optimizer: any ``torch.optim`` optimizer over the model's parameters.
        n_steps: number of optimizer steps.
        eval_fn, eval_every: every ``eval_every`` steps (and after the last), record ``eval_fn()``'s numbers.
        snapshot_fn, snapshot_every: likewise keep ``snapshot_fn()`` (e.g. a predicted trajectory) for plots.
        clip_grad_norm: clip the global gradient norm to this value before each step.
        backward_context: a factory of a context manager entered around ``loss.backward()``, e.g.
            ``lambda: counter.phase("backward")`` to count an adjoint's evaluations as backward ones.
        on_step_end: called with the step number after each optimizer step (e.g. to read and reset counters).
        progress: show a tqdm progress bar (in notebooks, a widget where available).

    Raises:
        FloatingPointError: if the loss becomes NaN or infinite (with the step at which it happened).
    """
    check_positive_int("n_steps", n_steps)
    for name, every in (("eval_every", eval_every), ("snapshot_every", snapshot_every)):
        if every < 0:
            raise ValueError(f"{name} must be >= 0 (0 turns it off), got {every}")
    history = History()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    start = time.perf_counter()
    bar = tqdm(range(1, n_steps + 1), desc=desc, disable=not progress, leave=False)
    for step in bar:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(step)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the loss became {value} at step {step}; lower the learning rate or check the data")
        with backward_context() if backward_context is not None else nullcontext():
            loss.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
        optimizer.step()
        if on_step_end is not None:
            on_step_end(step)
        history.steps.append(step)
        history.losses.append(value)
        history.seconds.append(time.perf_counter() - start)
        last = step == n_steps
        if eval_fn is not None and eval_every and (step % eval_every == 0 or last):
            history.eval_steps.append(step)
            for key, v in eval_fn().items():
                history.evals.setdefault(key, []).append(float(v))
        if snapshot_fn is not None and snapshot_every and (step % snapshot_every == 0 or last):
            history.snapshots.append((step, snapshot_fn()))
        if progress and (step % 10 == 0 or last):
            bar.set_postfix(loss=f"{value:.3g}", refresh=False)
    return history


def fit_windows(
    field: Callable[[Tensor, Tensor], Tensor],
    params: list[Tensor],
    t: Tensor,
    z: Tensor,
    *,
    epochs: int,
    window: int = 10,
    batch: int = 50,
    lr: float = 1e-3,
    solve: Optional[Callable[..., Tensor]] = None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "fit",
    snapshot_every: int = 0,
) -> History:
    """Fit a vector field to one evenly sampled trajectory on short windows (chapter 3's protocol).

    Each epoch shuffles all windows of ``window`` consecutive samples and takes one RMSprop step per full batch
    of ``batch`` windows (the windows left over, fewer than ``batch``, are not used that epoch): every window is
    integrated from its first sample and compared with the samples in it (mean squared error).
    ``solve(field, z0, t)`` is the ODE solver (default: ``nodelib.odeint`` with RK4 on the sample grid).
    Snapshots, if asked for, hold the prediction of the whole trajectory from ``z[0]``.
    """
    from .solvers import odeint

    if solve is None:
        solve = lambda f, y0, s: odeint(f, y0, s, method="rk4")  # noqa: E731
    if len(t) != len(z) or len(t) < window:
        raise ValueError(f"need len(t) == len(z) >= window, got {len(t)}, {len(z)}, window={window}")
    gaps = torch.diff(t)
    if not torch.allclose(gaps, gaps[0].expand_as(gaps), rtol=1e-4, atol=0):
        raise ValueError("fit_windows needs evenly spaced samples; for irregular times fit the whole trajectory")
    starts = torch.arange(len(t) - window + 1)
    per_epoch = max(1, len(starts) // batch)
    generator = torch.Generator().manual_seed(seed)
    order: list[Tensor] = []
    offsets = torch.arange(window)[:, None]

    def loss_fn(step: int) -> Tensor:
        k = (step - 1) % per_epoch
        if k == 0:
            order[:] = [starts[torch.randperm(len(starts), generator=generator)]]
        chosen = order[0][k * batch : (k + 1) * batch]
        pred = solve(field, z[chosen], t[:window] - t[0])
        return ((pred - z[chosen[None, :] + offsets]) ** 2).mean()

    def snapshot() -> Tensor:
        with torch.no_grad():
            return solve(field, z[0], t).detach().clone()

    optimizer = torch.optim.RMSprop(params, lr=lr)
    return train(loss_fn, optimizer, epochs * per_epoch, snapshot_fn=snapshot, snapshot_every=snapshot_every,
                 progress=progress, desc=desc)
