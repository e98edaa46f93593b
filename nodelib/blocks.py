"""Building blocks of chapter 1: a vector field, a residual block, a ResNet, and an ODE block.

A residual block ``z ↦ z + h f(t, z)`` is one explicit Euler step of ``dz/dt = f(t, z)``; a ResNet of N
such blocks over ``[t0, t1]`` with ``h = (t1 - t0) / N`` is N Euler steps; the ODE block replaces the
steps by an ODE solver (torchdiffeq's by default, or nodelib's teaching solvers).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn


class MLPField(nn.Module):
    """A vector field ``f(t, z)`` given by a multilayer perceptron acting on the last dimension of ``z``.

    Args:
        dim: size of the state.
        hidden: width of each hidden layer.
        n_hidden: number of hidden layers (at least 1).
        activation: the nonlinearity's class, e.g. ``nn.Tanh``.
        time_input: if True, ``t`` is appended to the input, so the field may change with time.
        damping: a constant λ >= 0 subtracted as ``-λ z``, making the field dissipative (chapter 2 uses it to
            show when the adjoint's backward reconstruction fails).
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 32,
        n_hidden: int = 1,
        activation: Callable[[], nn.Module] = nn.Tanh,
        time_input: bool = False,
        damping: float = 0.0,
    ) -> None:
        super().__init__()
        if not damping >= 0:
            raise ValueError(f"damping must be non-negative, got {damping}")
        self.damping = float(damping)
        for name, value in (("dim", dim), ("hidden", hidden), ("n_hidden", n_hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.dim = dim
        self.time_input = time_input
        layers: list[nn.Module] = []
        width_in = dim + (1 if time_input else 0)
        for _ in range(n_hidden):
            layers += [nn.Linear(width_in, hidden), activation()]
            width_in = hidden
        layers.append(nn.Linear(width_in, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        if z.shape[-1] != self.dim:
            raise ValueError(f"MLPField expects states whose last dimension is {self.dim}, got shape {tuple(z.shape)}")
        x = z
        if self.time_input:
            t_col = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(*z.shape[:-1], 1)
            x = torch.cat([z, t_col], dim=-1)
        out = self.net(x)
        return out - self.damping * z if self.damping else out


class ResidualBlock(nn.Module):
    """``z ↦ z + step * field(t, z)``: one explicit Euler step of size ``step`` taken at time ``t``."""

    def __init__(self, field: nn.Module, step: float = 1.0, t: float = 0.0) -> None:
        super().__init__()
        if not step > 0:
            raise ValueError(f"step must be positive, got {step}")
        self.field = field
        self.step = float(step)
        self.t = float(t)

    def forward(self, z: Tensor) -> Tensor:
        t = torch.tensor(self.t, dtype=z.dtype, device=z.device)
        return z + self.step * self.field(t, z)


class ResNet(nn.Module):
    """N residual blocks covering ``[t0, t1]`` in equal steps ``h = (t1 - t0) / N``.

    Block ``k`` is an Euler step at time ``t0 + k h`` with its own field ``fields[k]``. Pass the same module
    N times (or use :meth:`shared`) for weight-shared blocks: then the network is exactly N Euler steps of
    one ODE.
    """

    def __init__(self, fields: Sequence[nn.Module], t0: float = 0.0, t1: float = 1.0) -> None:
        super().__init__()
        if len(fields) == 0:
            raise ValueError("a ResNet needs at least one block")
        if not t1 > t0:
            raise ValueError(f"need t0 < t1, got t0={t0}, t1={t1}")
        h = (t1 - t0) / len(fields)
        self.blocks = nn.ModuleList(ResidualBlock(f, step=h, t=t0 + k * h) for k, f in enumerate(fields))
        self.t0, self.t1 = float(t0), float(t1)

    @classmethod
    def shared(cls, field: nn.Module, n_blocks: int, t0: float = 0.0, t1: float = 1.0) -> "ResNet":
        """A ResNet whose ``n_blocks`` blocks all use the one ``field`` (weight sharing)."""
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 1:
            raise ValueError(f"n_blocks must be a positive integer, got {n_blocks!r}")
        return cls([field] * n_blocks, t0=t0, t1=t1)

    @property
    def step(self) -> float:
        return self.blocks[0].step

    def forward(self, z: Tensor, return_all: bool = False) -> Tensor:
        states = [z]
        for block in self.blocks:
            z = block(z)
            states.append(z)
        return torch.stack(states) if return_all else z


class ODEBlock(nn.Module):
    """``z(t1) = z(t0) + ∫ field(t, z) dt``, solved by torchdiffeq (default) or by nodelib's teaching solvers.

    Args:
        field: the vector field, a module called as ``field(t, z)``.
        t0, t1: the integration interval.
        method, rtol, atol, options: passed to the solver (torchdiffeq's names and meanings).
        adjoint: use ``torchdiffeq.odeint_adjoint`` (constant-memory gradients, chapter 2).
        backend: ``"torchdiffeq"`` or ``"nodelib"``.

    The attribute :attr:`nfe` counts evaluations of the field since the last :meth:`reset_nfe`.
    """

    def __init__(
        self,
        field: nn.Module,
        t0: float = 0.0,
        t1: float = 1.0,
        method: str = "dopri5",
        rtol: float = 1e-3,
        atol: float = 1e-3,
        options: Optional[Mapping[str, Any]] = None,
        adjoint: bool = False,
        backend: str = "torchdiffeq",
    ) -> None:
        super().__init__()
        if backend not in ("torchdiffeq", "nodelib"):
            raise ValueError(f"backend must be 'torchdiffeq' or 'nodelib', got {backend!r}")
        if adjoint and backend != "torchdiffeq":
            raise ValueError("adjoint=True needs backend='torchdiffeq' (nodelib's own adjoint is chapter 2's)")
        if adjoint and not isinstance(field, nn.Module):
            raise TypeError("adjoint=True needs the field to be an nn.Module, so its parameters can be found")
        if t0 == t1:
            raise ValueError("t0 and t1 must differ")
        self.field = field
        self.t0, self.t1 = float(t0), float(t1)
        self.method, self.rtol, self.atol = method, rtol, atol
        self.options = dict(options or {})
        self.adjoint = adjoint
        self.backend = backend
        self.nfe = 0

    def reset_nfe(self) -> None:
        self.nfe = 0

    def _counted_field(self, t: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        return self.field(t, z)

    def trajectory(self, z0: Tensor, t: Tensor) -> Tensor:
        """The state at every time of ``t`` (shape ``(len(t), *z0.shape)``)."""
        if self.backend == "nodelib":
            from .solvers import odeint as nodelib_odeint

            return nodelib_odeint(
                self._counted_field, z0, t, method=self.method, rtol=self.rtol, atol=self.atol, options=self.options
            )
        import torchdiffeq

        if self.adjoint:
            counter = _CountingField(self)
            return torchdiffeq.odeint_adjoint(
                counter, z0, t, method=self.method, rtol=self.rtol, atol=self.atol, options=self.options,
                adjoint_params=tuple(self.field.parameters()),
            )
        return torchdiffeq.odeint(
            self._counted_field, z0, t, method=self.method, rtol=self.rtol, atol=self.atol, options=self.options
        )

    def forward(self, z0: Tensor) -> Tensor:
        t = torch.tensor([self.t0, self.t1], dtype=z0.dtype, device=z0.device)
        return self.trajectory(z0, t)[-1]


class _CountingField(nn.Module):
    """odeint_adjoint needs an nn.Module; this one forwards to the block's field and counts calls."""

    def __init__(self, block: ODEBlock) -> None:
        super().__init__()
        self._block = [block]  # a list, so the block is not registered as a submodule (no cycle)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self._block[0]._counted_field(t, z)
