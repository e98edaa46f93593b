"""Augmented Neural ODEs (chapter 4): solve in a larger space to escape the limits of flows.

An ODE flow is a homeomorphism of the space it acts on, so it cannot, for example, map x to -x on the real line.
Dupont et al. (2019) append zeros to the input, solve the ODE in the larger space and read the answer off
there (Facci & Zurlo 2022, Eq. 29-30): ``[h(0); a(0)] = [x; 0]``. For feature maps the zeros are extra channels.
"""
from __future__ import annotations

from typing import Any, Mapping, Union

import torch
from torch import Tensor, nn

from ._impl.checks import check_positive_int
from .blocks import MLPField, ODEBlock
from .config import SolverConfig


def augment(x: Tensor, extra: int) -> Tensor:
    """Append ``extra`` zeros along dimension 1: features of ``(B, d)`` vectors, or channels of ``(B, C, H, W)`` maps."""
    check_positive_int("extra", extra, minimum=0)
    if x.dim() < 2:
        raise ValueError(f"expected a batch of shape (B, d) or (B, C, ...), got shape {tuple(x.shape)}")
    if extra == 0:
        return x
    zeros = x.new_zeros((x.shape[0], extra, *x.shape[2:]))
    return torch.cat([x, zeros], dim=1)


class Augment(nn.Module):
    """The module form of :func:`augment`, to put in front of an ODE block."""

    def __init__(self, extra: int) -> None:
        super().__init__()
        augment(torch.zeros(1, 1), extra)  # validates
        self.extra = extra

    def forward(self, x: Tensor) -> Tensor:
        return augment(x, self.extra)

    def extra_repr(self) -> str:
        return f"extra={self.extra}"


class AugmentedNODE(nn.Module):
    """Vectors in, predictions out: augment with ``extra`` zeros, flow by an MLP field, read out linearly.

    With ``extra=0`` this is a plain Neural ODE classifier/regressor. :attr:`counter` is the ODE block's
    evaluation counter (by phase: ``with model.counter.phase("backward"): loss.backward()``).

    Args:
        in_dim, out_dim: sizes of the input and of the output.
        extra: number of zero dimensions appended (0: no augmentation).
        hidden: width of the field's hidden layers.
        solver: the ODE block's :class:`~nodelib.config.SolverConfig`, or a dict of its settings.
        readout: ``"linear"`` (a learned linear layer, for classification) or ``"project"`` (the first
            ``out_dim`` coordinates of the final state, as in Dupont et al.'s regression examples; a learned
            read-out would hide the flow's limits, e.g. a weight of -1 turns the identity flow into x -> -x).
    """

    def __init__(self, in_dim: int, out_dim: int = 1, extra: int = 0, hidden: int = 32,
                 solver: Union[SolverConfig, Mapping[str, Any], None] = None, readout: str = "linear") -> None:
        super().__init__()
        if readout not in ("linear", "project"):
            raise ValueError(f"readout must be 'linear' or 'project', got {readout!r}")
        if readout == "project" and out_dim > in_dim:
            raise ValueError(f"readout='project' returns input coordinates, so out_dim ({out_dim}) must be <= in_dim ({in_dim})")
        self.augment = Augment(extra)
        self.ode = ODEBlock(MLPField(in_dim + extra, hidden=hidden, n_hidden=2, activation=nn.ReLU), solver=solver)
        self.counter = self.ode.counter
        self.out_dim = out_dim
        self.readout = nn.Linear(in_dim + extra, out_dim) if readout == "linear" else None

    def flow(self, x: Tensor, t: Tensor) -> Tensor:
        """Trajectories of the augmented inputs at times ``t``: shape ``(len(t), B, in_dim + extra)``."""
        return self.ode.trajectory(self.augment(x), t)

    def forward(self, x: Tensor) -> Tensor:
        final = self.ode(self.augment(x))
        return final[:, : self.out_dim] if self.readout is None else self.readout(final)
