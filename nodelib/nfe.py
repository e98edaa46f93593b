"""Counting function evaluations (NFE), by phase: the one counter every part of nodelib uses.

:class:`EvalCounter` counts evaluations under the current *phase*, "forward" by default; switch to
"backward" around ``loss.backward()`` (``with counter.phase("backward"): ...``, or :func:`backward_counted`)
to count what an adjoint solve evaluates there. Backpropagation through the solver makes no evaluations in
the backward pass: autograd replays the recorded operations instead.

- :class:`NFECounter` wraps a vector field (an ``nn.Module``) and counts its calls (chapter 4 onwards);
- :class:`~nodelib.blocks.ODEBlock` keeps one as ``block.counter`` (``block.nfe`` is its total);
- the solvers' :class:`~nodelib.SolveStats` and the adjoint's :class:`~nodelib.adjoint.AdjointStats` are
  filled from one;
- code that knows how many evaluations it made without calling through a wrapper (the unrolled solves of
  :mod:`nodelib.fast`) adds them with :meth:`EvalCounter.add`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

from torch import Tensor, nn

F = TypeVar("F", bound=Callable[..., Any])


class EvalCounter:
    """Evaluation counts by phase ("forward", "backward", or any name)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {"forward": 0, "backward": 0}
        self._phase = "forward"

    @property
    def current_phase(self) -> str:
        return self._phase

    def add(self, n: int = 1) -> None:
        """Count ``n`` evaluations under the current phase."""
        self.counts[self._phase] = self.counts.get(self._phase, 0) + n

    @contextmanager
    def phase(self, name: str) -> Iterator[EvalCounter]:
        """Count the evaluations made inside the ``with`` block under ``name`` (restored on any exit)."""
        previous, self._phase = self._phase, name
        try:
            yield self
        finally:
            self._phase = previous

    def reset(self) -> dict[str, int]:
        """Zero the counts and return what they were."""
        counts = dict(self.counts)
        self.counts = {key: 0 for key in self.counts}
        return counts

    def wrap(self, func: F) -> F:
        """``func`` with each call counted."""

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.add(1)
            return func(*args, **kwargs)

        return counted  # type: ignore[return-value]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def forward_nfe(self) -> int:
        return self.counts.get("forward", 0)

    @property
    def backward_nfe(self) -> int:
        return self.counts.get("backward", 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(forward_nfe={self.forward_nfe}, backward_nfe={self.backward_nfe})"


class NFECounter(nn.Module):
    """A vector field that counts its own evaluations, by phase (an :class:`EvalCounter` in :attr:`counter`)."""

    def __init__(self, field: nn.Module) -> None:
        super().__init__()
        self.field = field
        self.counter = EvalCounter()

    def forward(self, t: Tensor, z: Any) -> Any:
        self.counter.add(1)
        return self.field(t, z)

    @property
    def counts(self) -> dict[str, int]:
        return self.counter.counts

    def phase(self, name: str):  # type: ignore[no-untyped-def]
        """Count the evaluations made inside the ``with`` block under ``name``."""
        return self.counter.phase(name)

    def add(self, n: int = 1) -> None:
        self.counter.add(n)

    def reset(self) -> dict[str, int]:
        return self.counter.reset()

    @property
    def forward_nfe(self) -> int:
        return self.counter.forward_nfe

    @property
    def backward_nfe(self) -> int:
        return self.counter.backward_nfe


def backward_counted(loss: Tensor, counter: Optional[Any]) -> None:
    """``loss.backward()``, with the evaluations it makes counted under the counter's "backward" phase.

    ``counter`` is an :class:`EvalCounter`, an :class:`NFECounter` or anything with a ``phase(name)`` context.
    """
    if counter is None:
        loss.backward()
        return
    with counter.phase("backward"):
        loss.backward()
