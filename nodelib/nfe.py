"""Counting function evaluations (NFE), separately for the forward and the backward pass (chapter 4 onwards).

Wrap a vector field in :class:`NFECounter`; evaluations are counted under the current *phase*, "forward" by
default. Switch to "backward" around ``loss.backward()`` (``with counter.phase("backward"): ...``) to count
the evaluations an adjoint solve makes there. Backpropagation through the solver makes none: autograd replays
the recorded operations instead.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import Tensor, nn


class NFECounter(nn.Module):
    """A vector field that counts its own evaluations, by phase."""

    def __init__(self, field: nn.Module) -> None:
        super().__init__()
        self.field = field
        self.counts: dict[str, int] = {"forward": 0, "backward": 0}
        self._phase = "forward"

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        self.counts[self._phase] = self.counts.get(self._phase, 0) + 1
        return self.field(t, z)

    @contextmanager
    def phase(self, name: str) -> Iterator["NFECounter"]:
        """Count the evaluations made inside the ``with`` block under ``name``."""
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

    @property
    def forward_nfe(self) -> int:
        return self.counts.get("forward", 0)

    @property
    def backward_nfe(self) -> int:
        return self.counts.get("backward", 0)
