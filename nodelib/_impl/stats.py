"""What a solve cost: function evaluations, steps taken and rejected, and where the steps fell."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import Tensor


@dataclass
class SolveStats:
    """Counters filled in by :func:`nodelib.odeint` when called with ``return_stats=True``.

    Attributes:
        method: the method's name.
        nfe: number of evaluations of ``func`` (the cost that matters for a neural vector field).
        n_steps: accepted steps.
        n_rejected: steps tried and rejected by the error control (adaptive methods only).
        step_starts: the time at which each accepted step began.
        step_sizes: the size of each accepted step (signed: negative when integrating backwards).
    """

    method: str
    nfe: int = 0
    n_steps: int = 0
    n_rejected: int = 0
    step_starts: list[float] = field(default_factory=list)
    step_sizes: list[float] = field(default_factory=list)

    def record_step(self, t0: float, h: float) -> None:
        self.n_steps += 1
        self.step_starts.append(t0)
        self.step_sizes.append(h)

    def counting(self, func: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
        """Wrap ``func`` so that each call adds one to :attr:`nfe`."""

        def counted(t: Tensor, y: Tensor) -> Tensor:
            self.nfe += 1
            return func(t, y)

        return counted

    def __str__(self) -> str:
        rejected = f", {self.n_rejected} rejected" if self.n_rejected else ""
        return f"{self.method}: {self.n_steps} steps{rejected}, {self.nfe} function evaluations"
