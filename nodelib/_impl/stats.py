"""What a solve cost: function evaluations, steps taken and rejected, and where the steps fell."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..nfe import EvalCounter


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
    n_steps: int = 0
    n_rejected: int = 0
    step_starts: list[float] = field(default_factory=list)
    step_sizes: list[float] = field(default_factory=list)
    counter: EvalCounter = field(default_factory=EvalCounter, repr=False, compare=False)

    @property
    def nfe(self) -> int:
        """Evaluations of ``func`` so far (read live from :attr:`counter`)."""
        return self.counter.total

    def record_step(self, t0: float, h: float) -> None:
        self.n_steps += 1
        self.step_starts.append(t0)
        self.step_sizes.append(h)

    def record_steps(self, starts: list[float], sizes: list[float]) -> None:
        """Record several accepted steps at once (the fixed-step driver does, after its loop)."""
        self.n_steps += len(starts)
        self.step_starts.extend(starts)
        self.step_sizes.extend(sizes)

    def __str__(self) -> str:
        rejected = f", {self.n_rejected} rejected" if self.n_rejected else ""
        return f"{self.method}: {self.n_steps} steps{rejected}, {self.nfe} function evaluations"
